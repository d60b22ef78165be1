package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// Reasons of the Ready condition.
const (
	ReasonCreated            = "Created"
	ReasonRethinkDBError     = "RethinkDBError"
	ReasonDatabaseNotFound   = "DatabaseNotFound"
	ReasonDatabaseNotReady   = "DatabaseNotReady"
	ReasonPrimaryKeyMismatch = "PrimaryKeyMismatch"
)

// SetReady sets the Ready condition on conds for generation.
func SetReady(conds *[]metav1.Condition, generation int64, ready bool, reason, message string) {
	status := metav1.ConditionFalse
	if ready {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

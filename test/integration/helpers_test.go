package integration

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

func newDatabase(name string) *v1alpha1.Database {
	return &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func labelsEverything() labels.Selector { return labels.Everything() }

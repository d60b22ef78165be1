package rethinkstore

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/storage"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// Messages of the 410 answers, the same as etcd3's so clients and tests that
// match on them keep working.
const (
	expiredList     = "The resourceVersion for the provided list is too old."
	expiredWatch    = "The resourceVersion for the provided watch is too old."
	continueExpired = "The provided continue parameter is too old " +
		"to display a consistent list result. You can start a new list without " +
		"the continue parameter."
	inconsistentContinue = "The provided continue parameter is too old " +
		"to display a consistent list result. You can start a new list without " +
		"the continue parameter, or use the continue token in this response to " +
		"retrieve the remainder of the results. Continuing with the provided " +
		"token results in an inconsistent list - objects that were created, " +
		"modified, or deleted between the time the first chunk was returned " +
		"and now may show up in the list."
)

// unavailable turns a connection-level failure into 503 Service Unavailable
// naming RethinkDB's address; other errors pass unchanged.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	if rethinkdb.IsUnavailable(err) {
		return apierrors.NewServiceUnavailable(err.Error())
	}
	return err
}

// expiredContinue is the 410 for a continue token older than the compacted
// revision. Like etcd3, it offers a token that continues at the latest
// revision (resourceVersion -1), at the price of consistency.
func expiredContinue(continueKey, keyPrefix string) error {
	token, err := storage.EncodeContinue(continueKey, keyPrefix, -1)
	if err != nil {
		utilruntime.HandleError(err)
		return apierrors.NewResourceExpired(continueExpired)
	}
	e := apierrors.NewResourceExpired(inconsistentContinue)
	e.ErrStatus.ListMeta.Continue = token
	return e
}

package admission

import (
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ErrInvalidReview is wrapped by every error about an AdmissionReview that cannot be evaluated.
var ErrInvalidReview = errors.New("invalid AdmissionReview")

const reviewAPIVersion = "admission.k8s.io/v1"

// ParseReview decodes an admission.k8s.io/v1 AdmissionReview request. The error wraps
// ErrInvalidReview and says what is wrong; when the request's uid could be read, it is returned
// too, so the answer can still be matched to the request.
func ParseReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalidReview, err)
	}
	if r.APIVersion != reviewAPIVersion || r.Kind != "AdmissionReview" {
		return r.Request, fmt.Errorf("%w: apiVersion %q kind %q: want %s AdmissionReview (list only v1 in the webhook's admissionReviewVersions)",
			ErrInvalidReview, r.APIVersion, r.Kind, reviewAPIVersion)
	}
	if r.Request == nil {
		return nil, fmt.Errorf("%w: no request", ErrInvalidReview)
	}
	if r.Request.UID == "" {
		return nil, fmt.Errorf("%w: request.uid is empty", ErrInvalidReview)
	}
	return r.Request, nil
}

// Response is the decision for one request.
type Response struct {
	UID     string
	Allowed bool
	// Code and Message fill the status of a refusal (kube-apiserver shows the message to the
	// client).
	Code    int32
	Message string
	// Warnings are returned to the client (kubectl prints them).
	Warnings []string
}

// MarshalReview encodes the AdmissionReview answer.
func MarshalReview(r Response) []byte {
	resp := &admissionv1.AdmissionResponse{UID: types.UID(r.UID), Allowed: r.Allowed, Warnings: r.Warnings}
	if !r.Allowed {
		reason := metav1.StatusReasonForbidden
		if r.Code == 400 {
			reason = metav1.StatusReasonBadRequest
		}
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: r.Code, Reason: reason, Message: r.Message}
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: "AdmissionReview"},
		Response: resp,
	}
	b, err := json.Marshal(&out)
	if err != nil {
		// Only strings and bools: cannot happen.
		panic("admission: marshal review: " + err.Error())
	}
	return b
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// Registration is what `alloy-runner register` sends.
type Registration struct {
	// Token is the registration token from the coordinator's settings.
	Token       string `json:"token"`
	Description string `json:"description"`
	// TagList is comma-separated, e.g. "linux,bash".
	TagList     string `json:"tag_list,omitempty"`
	RunUntagged bool   `json:"run_untagged"`
	Locked      bool   `json:"locked"`
	// Info describes the runner. AlloyCI requires it (without it the
	// registration fails with 500); nil sends the client's Info.
	Info *Info `json:"info,omitempty"`
}

// Registered is the coordinator's answer to a registration.
type Registered struct {
	ID int64 `json:"id"`
	// Token is the runner token to keep in config.toml.
	Token string `json:"token"`
}

// String shows the runner id, never the token.
func (r Registered) String() string { return fmt.Sprintf("runner %d", r.ID) }

// Register registers a new runner at the coordinator at baseURL. It fills in
// what the coordinator requires and reg leaves empty: the runner's Info and a
// description (the host name). A 403 matches ErrForbidden; a 5xx is a
// *StatusError. No error shows the token.
//
// The registration is not idempotent: every stored POST creates a runner
// with a live token. So it is retried only when it cannot have reached the
// coordinator (the dial failed); after a 5xx or a connection lost on the
// way, the error says the runner may have been registered all the same.
func (cl *Client) Register(ctx context.Context, baseURL string, reg Registration) (Registered, error) {
	if reg.Info == nil {
		info := cl.info
		reg.Info = &info
	}
	if reg.Description == "" {
		// AlloyCI refuses a runner without a description (403).
		reg.Description = DefaultDescription()
	}
	c, err := jsonCall(http.MethodPost, baseURL, "api/v4/runners", reg, RetryBriefly)
	if err != nil {
		return Registered{}, err
	}
	c.once = true
	resp, err := cl.do(ctx, c)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Code >= 500 {
			return Registered{}, fmt.Errorf("registering the runner: the coordinator failed on the registration (%d); "+
				"AlloyCI answers 500 when info is missing: check that the url points at AlloyCI; %s: %w", se.Code, mayBeStored, err)
		}
		if errors.Is(err, errMayHaveArrived) {
			return Registered{}, fmt.Errorf("registering the runner: the answer was lost; %s: %w", mayBeStored, err)
		}
		return Registered{}, fmt.Errorf("registering the runner: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		var out Registered
		if err := decode(resp, 64<<10, &out); err != nil {
			return Registered{}, fmt.Errorf("registering the runner: %w", err)
		}
		if out.Token == "" {
			return Registered{}, errors.New("registering the runner: the coordinator answered without a runner token")
		}
		return out, nil
	case http.StatusForbidden:
		// AlloyCI also answers 403 when the runner record is invalid
		// (no description, no info.name), not only for a wrong token.
		drain(resp)
		return Registered{}, fmt.Errorf("registering the runner: the coordinator refused the registration token (403): "+
			"copy it again from the coordinator's runner settings, and give the runner a description: %w", ErrForbidden)
	default:
		return Registered{}, unexpected(http.MethodPost, resp)
	}
}

// mayBeStored explains a registration that failed after it may have reached
// the coordinator.
const mayBeStored = "the registration may have been stored, so the runner may exist with a token this host never got: " +
	"before registering again, look for it (by its description) among the runners in the AlloyCI UI and remove it; " +
	"`alloy-runner verify` checks the runners this host's config.toml knows"

// DefaultDescription is the description of a runner registered without one:
// the host name, or "alloy-runner" when it is not known.
func DefaultDescription() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "alloy-runner"
}

type tokenBody struct {
	Token string `json:"token"`
}

// Verify checks that the runner token is still valid at the coordinator.
func (cl *Client) Verify(ctx context.Context, baseURL, runnerToken string) error {
	return cl.tokenCall(ctx, http.MethodPost, baseURL, "api/v4/runners/verify", runnerToken,
		"verifying the runner: the runner token is not valid (403): register the runner again")
}

// Unregister removes the runner from the coordinator.
func (cl *Client) Unregister(ctx context.Context, baseURL, runnerToken string) error {
	return cl.tokenCall(ctx, http.MethodDelete, baseURL, "api/v4/runners", runnerToken,
		"unregistering the runner: the runner token is not valid (403), so the coordinator does not know this runner")
}

// tokenCall sends the runner token to path and maps the answer: 200 or 204
// is success, 403 is ErrForbidden with the given explanation.
func (cl *Client) tokenCall(ctx context.Context, method, baseURL, path, runnerToken, forbidden string) error {
	c, err := jsonCall(method, baseURL, path, tokenBody{runnerToken}, RetryBriefly)
	if err != nil {
		return err
	}
	resp, err := cl.do(ctx, c)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		drain(resp)
		return nil
	case http.StatusForbidden:
		drain(resp)
		return fmt.Errorf("%s: %w", forbidden, ErrForbidden)
	default:
		return unexpected(method, resp)
	}
}

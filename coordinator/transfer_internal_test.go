package coordinator

import (
	"net/http"
	"testing"
	"time"
)

// An artifacts transfer is not cut by the client's overall timeout, which
// bounds API calls: a large archive over a slow link takes longer. The
// caller's context bounds it instead.
func TestTransfersIgnoreTheOverallTimeout(t *testing.T) {
	hc := &http.Client{Timeout: time.Nanosecond}
	cl := New(Options{HTTPClient: hc})
	if cl.http.Timeout != time.Nanosecond || cl.transfer.Timeout != 0 || cl.transfer.Transport != cl.http.Transport {
		t.Errorf("api timeout %v, transfer timeout %v, same transport %v; want 1ns, 0, true",
			cl.http.Timeout, cl.transfer.Timeout, cl.transfer.Transport == cl.http.Transport)
	}
}

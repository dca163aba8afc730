package lambdaemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Runtime API paths (version 2018-06-01) and headers.
const (
	pathNext      = "GET /2018-06-01/runtime/invocation/next"
	pathResponse  = "POST /2018-06-01/runtime/invocation/{id}/response"
	pathError     = "POST /2018-06-01/runtime/invocation/{id}/error"
	pathInitError = "POST /2018-06-01/runtime/init/error"

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionArn = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	// Trailers of a streamed response that failed midway.
	trailerErrorType = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody = "Lambda-Runtime-Function-Error-Body"
)

// routes is the Runtime API of one environment.
func (e *environment) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathNext, e.handleNext)
	mux.HandleFunc(pathResponse, e.handleResponse)
	mux.HandleFunc(pathError, e.handleError)
	mux.HandleFunc(pathInitError, e.handleInitError)
	return mux
}

// handleNext blocks until there is an invocation, then returns its payload
// with the invocation headers. It does not time out: the runtime waits as
// long as the function is idle.
func (e *environment) handleNext(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	if !e.polled {
		e.polled = true
		e.log.Info("lambda init done", "init_duration_ms", time.Since(e.started).Milliseconds())
	}
	e.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-e.next:
	case <-r.Context().Done():
		return
	case <-e.stopping:
		http.Error(w, "environment stopping", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	inv.deadline = now.Add(e.fn.Timeout)
	select {
	case <-e.exited:
		// A process that asked and then exited leaves its request behind
		// until the server notices the closed connection: hand the
		// invocation back rather than lose it.
		inv.undelivered = true
		close(inv.accepted)
		return
	default:
	}
	e.mu.Lock()
	e.current = inv
	e.mu.Unlock()
	close(inv.accepted)

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(headerFunctionArn, e.fn.Arn)
	h.Set(headerTraceID, newTraceID(now))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload) // a write error shows up as the runtime's timeout
}

// handleResponse records a successful invocation's response. A streamed
// response may still fail midway: the runtime then sends the error in the
// trailers.
func (e *environment) handleResponse(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayloadBytes))
	inv, ok := e.claim(r.PathValue("id"))
	if !ok {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "unknown or already answered request id")
		return
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		inv.finish(outcome{err: newFunctionError(inv.id, "Function.ResponseSizeTooLarge",
			"Response payload size exceeded maximum allowed payload size ("+strconv.Itoa(MaxPayloadBytes)+" bytes).")})
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "response payload too large")
		return
	case err != nil:
		inv.finish(outcome{err: newFunctionError(inv.id, "Runtime.ResponseError", "reading the response: "+err.Error())})
		writeAPIError(w, http.StatusBadRequest, "InvalidResponse", err.Error())
		return
	}
	if typ := r.Trailer.Get(trailerErrorType); typ != "" {
		inv.finish(outcome{err: trailerError(inv.id, typ, r.Trailer.Get(trailerErrorBody))})
	} else {
		inv.finish(outcome{result: body})
	}
	writeAccepted(w)
}

// handleError records a failed invocation: the body is the error document
// (errorMessage, errorType, stackTrace), and the error type may also come in
// a header.
func (e *environment) handleError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayloadBytes))
	inv, ok := e.claim(r.PathValue("id"))
	if !ok {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "unknown or already answered request id")
		return
	}
	doc := parseErrorDoc(body, r.Header.Get(headerErrorType))
	payload, _ := marshalErrorDoc(doc)
	inv.finish(outcome{err: &FunctionError{RequestID: inv.id, Type: doc.Type, Message: doc.Message, Payload: payload}})
	writeAccepted(w)
}

// handleInitError records an init failure; the environment is then reset.
func (e *environment) handleInitError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayloadBytes))
	doc := parseErrorDoc(body, r.Header.Get(headerErrorType))
	e.mu.Lock()
	first := e.initErr == nil
	if first {
		e.initErr = &doc
	}
	e.mu.Unlock()
	if first {
		e.log.Info("lambda init error", "error_type", doc.Type, "error", doc.Message)
		close(e.initFailed)
	}
	writeAccepted(w)
}

// claim takes the current invocation if id names it; each invocation can
// be answered once.
func (e *environment) claim(id string) (*invocation, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.current == nil || e.current.id != id {
		return nil, false
	}
	inv := e.current
	e.current = nil
	return inv, true
}

// finish delivers the outcome to the waiting Invoke.
func (inv *invocation) finish(out outcome) {
	select {
	case inv.done <- out:
	default: // already answered; claim prevents this
	}
}

// parseErrorDoc reads an error document, falling back to the header's
// type and the raw body when the body is not one.
func parseErrorDoc(body []byte, headerType string) errorDoc {
	var doc errorDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		doc = errorDoc{Message: string(body)}
	}
	if doc.Type == "" {
		doc.Type = headerType
	}
	if doc.Type == "" {
		doc.Type = "Unhandled"
	}
	return doc
}

// trailerError decodes the error a runtime sends in the trailers of a
// streamed response (the body trailer is a base64 error document).
func trailerError(requestID, typ, body64 string) *FunctionError {
	raw, err := base64.StdEncoding.DecodeString(body64)
	if err != nil {
		raw = nil
	}
	doc := parseErrorDoc(raw, typ)
	payload, _ := marshalErrorDoc(doc)
	return &FunctionError{RequestID: requestID, Type: doc.Type, Message: doc.Message, Payload: payload}
}

func marshalErrorDoc(doc errorDoc) ([]byte, error) {
	return json.Marshal(doc)
}

// writeAccepted is the Runtime API's answer to a POST it accepted.
func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// writeAPIError is the Runtime API's error answer.
func writeAPIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorDoc{Message: msg, Type: typ})
}

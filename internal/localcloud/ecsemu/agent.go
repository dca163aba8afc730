package ecsemu

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Task scale-in protection limits, as ECS applies them.
const (
	// DefaultProtection is how long a PUT without ExpiresInMinutes protects.
	DefaultProtection = 2 * time.Hour
	// MaxProtection is the longest protection one PUT grants.
	MaxProtection = 48 * time.Hour
)

// protectionState is the agent's "protection" object.
type protectionState struct {
	// ExpirationDate is RFC 3339, null when the task is not protected.
	ExpirationDate    *string `json:"ExpirationDate"`
	ProtectionEnabled bool    `json:"ProtectionEnabled"`
	TaskArn           string  `json:"TaskArn"`
}

// agentFailure is the agent's "failure" object: ECS refused the task.
type agentFailure struct {
	Arn    string  `json:"Arn"`
	Detail *string `json:"Detail"`
	Reason string  `json:"Reason"`
}

// agentErrorBody is the agent's "error" object: the request was invalid or
// the agent's call to ECS failed.
type agentErrorBody struct {
	Arn     string `json:"Arn,omitempty"`
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// serveAgent answers GET and PUT $ECS_AGENT_URI/task-protection/v1/state
// for the task in the path, with the agent's response shapes: 200 with
// {"protection":{…}}, 200 with {"failure":{…}} when ECS refuses the task
// (TASK_NOT_VALID: not part of a service, or stopped), and
// {"requestID","error":{…}} with a 4xx status for an invalid request.
func (e *Emulator) serveAgent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var enable *bool
	var minutes *int
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var req struct {
			ProtectionEnabled *bool
			ExpiresInMinutes  *int
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeAgentError(w, http.StatusBadRequest, agentErrorBody{Code: "InvalidParameterException", Message: "Invalid request: cannot decode the body as JSON"})
			return
		}
		if req.ProtectionEnabled == nil {
			writeAgentError(w, http.StatusBadRequest, agentErrorBody{Code: "InvalidParameterException", Message: "Invalid request: does not contain 'ProtectionEnabled' field"})
			return
		}
		enable, minutes = req.ProtectionEnabled, req.ExpiresInMinutes
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeAgentError(w, http.StatusMethodNotAllowed, agentErrorBody{Code: "InvalidRequest", Message: "Method " + r.Method + " not allowed"})
		return
	}

	e.mu.Lock()
	t, ok := e.tasks[id]
	if !ok {
		e.mu.Unlock()
		writeAgentError(w, http.StatusNotFound, agentErrorBody{Code: "ResourceNotFoundException", Message: "Unable to find task " + id})
		return
	}
	if t.service == "" || t.lastStatus == StatusStopped {
		arn := t.arn
		e.mu.Unlock()
		// ECS keeps protection only for tasks of a service.
		writeJSON(w, http.StatusOK, "application/json", map[string]any{
			"failure": agentFailure{Arn: arn, Reason: "TASK_NOT_VALID"},
		})
		return
	}
	now := time.Now()
	if enable != nil {
		if *enable {
			d := DefaultProtection
			if minutes != nil {
				d = time.Duration(*minutes) * time.Minute
				if d < time.Minute || d > MaxProtection {
					arn := t.arn
					e.mu.Unlock()
					writeAgentError(w, http.StatusBadRequest, agentErrorBody{
						Arn: arn, Code: "InvalidParameterException",
						Message: "expiresInMinutes must be between 1 and 2880",
					})
					return
				}
			}
			t.protectedUntil = now.Add(d)
		} else {
			t.protectedUntil = time.Time{}
		}
	}
	state := protectionState{ProtectionEnabled: t.protected(now), TaskArn: t.arn}
	if state.ProtectionEnabled {
		s := t.protectedUntil.UTC().Format(time.RFC3339)
		state.ExpirationDate = &s
	}
	e.mu.Unlock()
	if enable != nil {
		e.log.InfoContext(r.Context(), "task protection set", "task_arn", state.TaskArn,
			"protection_enabled", state.ProtectionEnabled, "expiration_date", deref(state.ExpirationDate))
		e.poke() // a scale-in may have been waiting for this task
	}
	writeJSON(w, http.StatusOK, "application/json", map[string]any{"protection": state})
}

func writeAgentError(w http.ResponseWriter, status int, body agentErrorBody) {
	writeJSON(w, status, "application/json", map[string]any{"requestID": newRequestID(), "error": body})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

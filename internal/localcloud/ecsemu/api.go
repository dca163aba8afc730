package ecsemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go"
)

// targetPrefix starts the X-Amz-Target header of every ECS API call.
const targetPrefix = "AmazonEC2ContainerServiceV20141113."

// maxBody bounds a request body; ECS requests are small.
const maxBody = 1 << 20

// apiError is an ECS API error: its type (the exception's name), message
// and HTTP status (400 unless set).
type apiError struct {
	Type        string
	Message     string
	ResourceIDs []string // ConflictException's resourceIds
	status      int
	cause       error
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }
func (e *apiError) Unwrap() error { return e.cause }

// ErrorCode, ErrorMessage and ErrorFault make an apiError a smithy.APIError,
// so Go callers of RunTask read it as SDK callers read the API's answer.
func (e *apiError) ErrorCode() string    { return e.Type }
func (e *apiError) ErrorMessage() string { return e.Message }
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

func invalidParameter(format string, args ...any) *apiError {
	return &apiError{Type: "InvalidParameterException", Message: fmt.Sprintf(format, args...)}
}

// operations maps an X-Amz-Target operation to its handler.
var operations = map[string]func(e *Emulator, ctx context.Context, body []byte) (any, error){
	"RunTask":       (*Emulator).apiRunTask,
	"ListTasks":     (*Emulator).apiListTasks,
	"DescribeTasks": (*Emulator).apiDescribeTasks,
	"StopTask":      (*Emulator).apiStopTask,
}

// serveAPI answers one ECS API call (AWS JSON 1.1).
func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	handle, known := operations[op]
	if !ok || !known {
		e.log.WarnContext(r.Context(), "ecs call not emulated", "target", r.Header.Get("X-Amz-Target"))
		writeAPIError(w, &apiError{Type: "UnknownOperationException", Message: fmt.Sprintf("Operation %q is not emulated.", op)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeAPIError(w, &apiError{Type: "SerializationException", Message: "read request: " + err.Error()})
		return
	}
	out, err := handle(e, r.Context(), body)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{Type: "ServerException", Message: err.Error(), status: http.StatusInternalServerError}
		}
		e.log.InfoContext(r.Context(), "ecs call refused", "operation", op, "error_type", ae.Type, "error", ae.Message)
		writeAPIError(w, ae)
		return
	}
	writeJSON(w, http.StatusOK, "application/x-amz-json-1.1", out)
}

func writeAPIError(w http.ResponseWriter, ae *apiError) {
	status := ae.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body := map[string]any{"__type": ae.Type, "message": ae.Message}
	if len(ae.ResourceIDs) > 0 {
		body["resourceIds"] = ae.ResourceIDs
	}
	writeJSON(w, status, "application/x-amz-json-1.1", body)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are written
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", newRequestID())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decode reads a request body into a T; an empty body is an empty request.
func decode[T any](body []byte) (T, error) {
	var v T
	if len(body) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, &apiError{Type: "SerializationException", Message: "malformed request: " + err.Error()}
	}
	return v, nil
}

// checkCluster accepts the emulated cluster by name or ARN, and no cluster
// (ECS's "default").
func (e *Emulator) checkCluster(c string) error {
	if c == "" {
		c = DefaultCluster
	}
	if c == e.cfg.Cluster || c == e.clusterArn {
		return nil
	}
	return &apiError{Type: "ClusterNotFoundException", Message: fmt.Sprintf("Cluster %s not found.", c)}
}

// Request shapes: the members edp's callers send; the rest is ignored.

type runRequest struct {
	Cluster                  string                 `json:"cluster,omitempty"`
	TaskDefinition           string                 `json:"taskDefinition"`
	Count                    *int                   `json:"count,omitempty"`
	StartedBy                string                 `json:"startedBy,omitempty"`
	Group                    string                 `json:"group,omitempty"`
	Overrides                *taskOverride          `json:"overrides,omitempty"`
	ClientToken              string                 `json:"clientToken,omitempty"`
	LaunchType               string                 `json:"launchType,omitempty"`
	CapacityProviderStrategy []capacityProviderItem `json:"capacityProviderStrategy,omitempty"`
	NetworkConfiguration     *networkConfiguration  `json:"networkConfiguration,omitempty"`
	Tags                     []tag                  `json:"tags,omitempty"`
}

type taskOverride struct {
	ContainerOverrides []containerOverride `json:"containerOverrides,omitempty"`
}

type containerOverride struct {
	Name        string     `json:"name,omitempty"`
	Command     []string   `json:"command,omitempty"`
	Environment []keyValue `json:"environment,omitempty"`
}

type keyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type capacityProviderItem struct {
	CapacityProvider string `json:"capacityProvider"`
	Weight           int    `json:"weight,omitempty"`
	Base             int    `json:"base,omitempty"`
}

type networkConfiguration struct {
	AwsvpcConfiguration *struct {
		Subnets        []string `json:"subnets,omitempty"`
		SecurityGroups []string `json:"securityGroups,omitempty"`
		AssignPublicIP string   `json:"assignPublicIp,omitempty"`
	} `json:"awsvpcConfiguration,omitempty"`
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Response shapes.

// epoch is a timestamp as AWS JSON writes it: seconds since the epoch.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64), nil
}

func epochOf(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	v := epoch(t)
	return &v
}

type taskView struct {
	TaskArn              string          `json:"taskArn"`
	ClusterArn           string          `json:"clusterArn"`
	TaskDefinitionArn    string          `json:"taskDefinitionArn"`
	LastStatus           string          `json:"lastStatus"`
	DesiredStatus        string          `json:"desiredStatus"`
	LaunchType           string          `json:"launchType,omitempty"`
	CapacityProviderName string          `json:"capacityProviderName,omitempty"`
	StartedBy            string          `json:"startedBy,omitempty"`
	Group                string          `json:"group,omitempty"`
	CreatedAt            *epoch          `json:"createdAt,omitempty"`
	StartedAt            *epoch          `json:"startedAt,omitempty"`
	StoppingAt           *epoch          `json:"stoppingAt,omitempty"`
	StoppedAt            *epoch          `json:"stoppedAt,omitempty"`
	StopCode             string          `json:"stopCode,omitempty"`
	StoppedReason        string          `json:"stoppedReason,omitempty"`
	Containers           []containerView `json:"containers"`
	Overrides            *taskOverride   `json:"overrides,omitempty"`
	Tags                 []tag           `json:"tags,omitempty"`
}

type containerView struct {
	ContainerArn string `json:"containerArn"`
	TaskArn      string `json:"taskArn"`
	Name         string `json:"name"`
	LastStatus   string `json:"lastStatus"`
	ExitCode     *int   `json:"exitCode,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

type failureView struct {
	Arn    string `json:"arn"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

func (e *Emulator) viewLocked(t *task) taskView {
	name := t.def.Container
	if name == "" {
		name = t.def.Family
	}
	v := taskView{
		TaskArn:              t.arn,
		ClusterArn:           e.clusterArn,
		TaskDefinitionArn:    t.def.Arn,
		LastStatus:           t.lastStatus,
		DesiredStatus:        t.desiredStatus,
		LaunchType:           t.launchType,
		CapacityProviderName: t.capacityProvider,
		StartedBy:            t.startedBy,
		Group:                t.group,
		CreatedAt:            epochOf(t.createdAt),
		StartedAt:            epochOf(t.startedAt),
		StoppingAt:           epochOf(t.stoppingAt),
		StoppedAt:            epochOf(t.stoppedAt),
		StopCode:             t.stopCode,
		StoppedReason:        t.stoppedReason,
		Containers: []containerView{{
			ContainerArn: t.containerArn, TaskArn: t.arn, Name: name, LastStatus: t.lastStatus, ExitCode: t.exitCode,
		}},
		Overrides: t.overrides,
		Tags:      t.tags,
	}
	if t.stopCode == stopCodeFailedToStart {
		v.Containers[0].Reason = t.stoppedReason
	}
	return v
}

// Operations.

func (e *Emulator) apiRunTask(ctx context.Context, body []byte) (any, error) {
	req, err := decode[runRequest](body)
	if err != nil {
		return nil, err
	}
	if err := checkPlacement(req); err != nil {
		return nil, err
	}
	type answer struct {
		Tasks    []taskView    `json:"tasks"`
		Failures []failureView `json:"failures"`
	}
	if failures := e.capacityFailures(req); failures != nil {
		return answer{[]taskView{}, failures}, nil
	}
	tasks, err := e.runTask(ctx, req)
	if err != nil {
		return nil, err
	}
	return answer{tasks, []failureView{}}, nil
}

// CapacityReason is the reason RunTask gives in failures[] for a task
// Fargate has no capacity for.
const CapacityReason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"

// SetCapacity turns the cluster's Fargate capacity off (false) or back on.
// Without capacity RunTask starts nothing: the API answers every requested
// task in failures[] with CapacityReason, as ECS does for a Fargate
// shortfall, and the Go RunTask returns ErrNoCapacity.
func (e *Emulator) SetCapacity(available bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noCapacity = !available
	e.log.Info("Fargate capacity", "available", available)
}

// ErrNoCapacity is returned by RunTask while SetCapacity(false) holds.
var ErrNoCapacity = errors.New(CapacityReason)

// capacityFailures returns one failure per task req asks for when the
// cluster has no capacity, and nil when it has.
func (e *Emulator) capacityFailures(req runRequest) []failureView {
	e.mu.Lock()
	none := e.noCapacity
	e.mu.Unlock()
	if !none {
		return nil
	}
	count := 1
	if req.Count != nil {
		count = *req.Count
	}
	failures := make([]failureView, 0, count)
	for range count {
		failures = append(failures, failureView{Reason: CapacityReason})
	}
	e.log.Warn("run task refused: no capacity", "tasks", count, "started_by", req.StartedBy)
	return failures
}

// checkPlacement applies ECS's rules for where a Fargate task with awsvpc
// networking (edp's task definitions) may run; the emulator then ignores
// these settings.
func checkPlacement(req runRequest) error {
	if req.LaunchType != "" && len(req.CapacityProviderStrategy) > 0 {
		return invalidParameter("Specifying both a launch type and capacity provider strategy is not supported.")
	}
	if req.LaunchType != "" && req.LaunchType != "FARGATE" {
		return invalidParameter("Launch type %s is not emulated: the local cluster runs FARGATE tasks.", req.LaunchType)
	}
	for _, item := range req.CapacityProviderStrategy {
		if item.CapacityProvider != "FARGATE" && item.CapacityProvider != "FARGATE_SPOT" {
			return invalidParameter("The specified capacity provider strategy cannot contain a capacity provider (%s) that is not associated with the cluster.", item.CapacityProvider)
		}
	}
	nc := req.NetworkConfiguration
	if nc == nil || nc.AwsvpcConfiguration == nil || len(nc.AwsvpcConfiguration.Subnets) == 0 {
		return invalidParameter("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	vpc := nc.AwsvpcConfiguration
	if len(vpc.Subnets) > 16 {
		return invalidParameter("At most 16 subnets are allowed, got %d.", len(vpc.Subnets))
	}
	if len(vpc.SecurityGroups) > 5 {
		return invalidParameter("At most 5 security groups are allowed, got %d.", len(vpc.SecurityGroups))
	}
	if a := vpc.AssignPublicIP; a != "" && a != "ENABLED" && a != "DISABLED" {
		return invalidParameter("assignPublicIp must be ENABLED or DISABLED, got %s.", a)
	}
	return nil
}

func (e *Emulator) apiListTasks(_ context.Context, body []byte) (any, error) {
	req, err := decode[struct {
		Cluster           string `json:"cluster"`
		Family            string `json:"family"`
		ServiceName       string `json:"serviceName"`
		StartedBy         string `json:"startedBy"`
		DesiredStatus     string `json:"desiredStatus"`
		ContainerInstance string `json:"containerInstance"`
		LaunchType        string `json:"launchType"`
		MaxResults        *int   `json:"maxResults"`
		NextToken         string `json:"nextToken"`
	}](body)
	if err != nil {
		return nil, err
	}
	if err := e.checkCluster(req.Cluster); err != nil {
		return nil, err
	}
	if req.StartedBy != "" && (req.Family != "" || req.ServiceName != "" || req.DesiredStatus != "" ||
		req.ContainerInstance != "" || req.LaunchType != "") {
		return nil, invalidParameter("When you specify startedBy as the filter, it must be the only filter that you use.")
	}
	status := req.DesiredStatus
	switch status {
	case "":
		status = StatusRunning
	case StatusRunning, StatusPending, StatusStopped:
	default:
		return nil, invalidParameter("desiredStatus must be RUNNING, PENDING or STOPPED, got %s.", status)
	}
	limit := 100
	if req.MaxResults != nil {
		limit = *req.MaxResults
		if limit < 1 || limit > 100 {
			return nil, invalidParameter("maxResults must be between 1 and 100, got %d.", limit)
		}
	}
	var after int64
	if req.NextToken != "" {
		after, err = parsePageToken(req.NextToken)
		if err != nil {
			return nil, err
		}
	}
	service := req.ServiceName
	if i := strings.LastIndex(service, "/"); i >= 0 { // a service ARN
		service = service[i+1:]
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	out := struct {
		TaskArns  []string `json:"taskArns"`
		NextToken string   `json:"nextToken,omitempty"`
	}{TaskArns: []string{}}
	for _, t := range e.order {
		// ECS never lists a task by desired status PENDING.
		if t.seq <= after || t.desiredStatus != status ||
			(req.Family != "" && t.def.Family != req.Family) ||
			(service != "" && t.service != service) ||
			(req.StartedBy != "" && t.startedBy != req.StartedBy) ||
			(req.LaunchType != "" && t.launchType != req.LaunchType) {
			continue
		}
		if len(out.TaskArns) == limit {
			out.NextToken = pageToken(after)
			break
		}
		out.TaskArns = append(out.TaskArns, t.arn)
		after = t.seq
	}
	return out, nil
}

// pageToken and parsePageToken make ListTasks' opaque nextToken: the
// creation number of the last task listed.
func pageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + strconv.FormatInt(seq, 10)))
}

func parsePageToken(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(b), "after:"); ok {
			if n, err := strconv.ParseInt(rest, 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return 0, invalidParameter("Invalid nextToken.")
}

func (e *Emulator) apiDescribeTasks(_ context.Context, body []byte) (any, error) {
	req, err := decode[struct {
		Cluster string   `json:"cluster"`
		Tasks   []string `json:"tasks"`
	}](body)
	if err != nil {
		return nil, err
	}
	if err := e.checkCluster(req.Cluster); err != nil {
		return nil, err
	}
	if len(req.Tasks) == 0 || len(req.Tasks) > 100 {
		return nil, invalidParameter("tasks must name 1 to 100 tasks, got %d.", len(req.Tasks))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := struct {
		Tasks    []taskView    `json:"tasks"`
		Failures []failureView `json:"failures"`
	}{Tasks: []taskView{}, Failures: []failureView{}}
	for _, ref := range req.Tasks {
		if t := e.taskLocked(ref); t != nil {
			out.Tasks = append(out.Tasks, e.viewLocked(t))
			continue
		}
		arn := ref
		if !strings.HasPrefix(arn, "arn:") {
			arn = fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", e.cfg.Region, e.cfg.AccountID, e.cfg.Cluster, ref)
		}
		out.Failures = append(out.Failures, failureView{Arn: arn, Reason: "MISSING"})
	}
	return out, nil
}

func (e *Emulator) apiStopTask(ctx context.Context, body []byte) (any, error) {
	req, err := decode[struct {
		Cluster string `json:"cluster"`
		Task    string `json:"task"`
		Reason  string `json:"reason"`
	}](body)
	if err != nil {
		return nil, err
	}
	if err := e.checkCluster(req.Cluster); err != nil {
		return nil, err
	}
	if req.Reason == "" {
		req.Reason = "Task stopped by user"
	}
	if len(req.Reason) > maxStoppedReason {
		return nil, invalidParameter("reason is longer than %d characters.", maxStoppedReason)
	}
	e.mu.Lock()
	t := e.taskLocked(req.Task)
	if t == nil {
		e.mu.Unlock()
		return nil, invalidParameter("The referenced task was not found.")
	}
	e.stopLocked(t, stopCodeUser, req.Reason)
	v := e.viewLocked(t)
	e.mu.Unlock()
	e.log.InfoContext(ctx, "stop task requested", "task_arn", t.arn, "reason", req.Reason)
	e.poke() // a service replaces the task
	return struct {
		Task taskView `json:"task"`
	}{v}, nil
}

// newRequestID returns a random ID in the UUID layout AWS uses.
func newRequestID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

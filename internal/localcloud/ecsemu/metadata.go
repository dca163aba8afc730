package ecsemu

import (
	"net/http"
	"strings"
)

// taskMetadata is the task metadata endpoint v4's answer at
// ${ECS_CONTAINER_METADATA_URI_V4}/task, in the agent's shape for a Fargate
// task: the members the emulator knows; the agent's others (limits, pull
// times, networks, clock drift, storage metrics) are left out.
type taskMetadata struct {
	Cluster          string              `json:"Cluster"`
	ServiceName      string              `json:"ServiceName,omitempty"`
	TaskARN          string              `json:"TaskARN"`
	Family           string              `json:"Family"`
	Revision         string              `json:"Revision"`
	DesiredStatus    string              `json:"DesiredStatus"`
	KnownStatus      string              `json:"KnownStatus"`
	AvailabilityZone string              `json:"AvailabilityZone"`
	LaunchType       string              `json:"LaunchType"`
	Containers       []containerMetadata `json:"Containers"`
}

// containerMetadata is one container of taskMetadata.
type containerMetadata struct {
	DockerID      string            `json:"DockerId"`
	Name          string            `json:"Name"`
	DockerName    string            `json:"DockerName"`
	Labels        map[string]string `json:"Labels"`
	DesiredStatus string            `json:"DesiredStatus"`
	KnownStatus   string            `json:"KnownStatus"`
	Type          string            `json:"Type"`
	ContainerARN  string            `json:"ContainerARN"`
	ExitCode      *int              `json:"ExitCode,omitempty"`
}

// serveTaskMetadata answers GET /metadata/v4/<task-id>/task, the path of
// the task's ECS_CONTAINER_METADATA_URI_V4 followed by /task. A stopped
// task still has its metadata (the agent answers until the task is gone).
func (e *Emulator) serveTaskMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSON(w, http.StatusMethodNotAllowed, "application/json", "V4 task metadata handler: method "+r.Method+" not allowed")
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tasks[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, "application/json", "V4 task metadata handler: unable to find task "+id)
		return
	}
	name := t.def.Container
	if name == "" {
		name = t.def.Family
	}
	revision := ""
	if i := strings.LastIndex(t.def.Arn, ":"); i >= 0 {
		revision = t.def.Arn[i+1:]
	}
	writeJSON(w, http.StatusOK, "application/json", taskMetadata{
		Cluster:          e.clusterArn,
		ServiceName:      t.service,
		TaskARN:          t.arn,
		Family:           t.def.Family,
		Revision:         revision,
		DesiredStatus:    t.desiredStatus,
		KnownStatus:      t.lastStatus,
		AvailabilityZone: e.cfg.Region + "a",
		LaunchType:       "FARGATE",
		Containers: []containerMetadata{{
			DockerID:   t.id + "-" + t.containerArn[strings.LastIndex(t.containerArn, "/")+1:][:10],
			Name:       name,
			DockerName: name,
			Labels: map[string]string{
				"com.amazonaws.ecs.cluster":                 e.clusterArn,
				"com.amazonaws.ecs.container-name":          name,
				"com.amazonaws.ecs.task-arn":                t.arn,
				"com.amazonaws.ecs.task-definition-family":  t.def.Family,
				"com.amazonaws.ecs.task-definition-version": revision,
			},
			DesiredStatus: t.desiredStatus,
			KnownStatus:   t.lastStatus,
			Type:          "NORMAL",
			ContainerARN:  t.containerArn,
			ExitCode:      t.exitCode,
		}},
	})
}

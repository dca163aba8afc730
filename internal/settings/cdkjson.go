package settings

import (
	"encoding/json"
	"fmt"
	"os"
)

// FromCDKJSON reads the settings a synth of the app with cdkJSON (the
// project's cdk.json) would use: its "context" object, overrides on top
// (as `cdk -c key=value` gives them), then the job directory's job file
// below them (WithJobFile), through FromContext. Tools that predict what
// the stacks do without synthesizing them (`edp simulate`) read the
// settings here, so they cannot disagree with cdk.go.
func FromCDKJSON(cdkJSON string, overrides map[string]string) (Settings, error) {
	raw, err := os.ReadFile(cdkJSON)
	if err != nil {
		return Settings{}, fmt.Errorf("read the stacks' context: %w", err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return Settings{}, fmt.Errorf("parse %s: %w", cdkJSON, err)
	}
	ctx := doc.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	for k, v := range overrides {
		ctx[k] = v
	}
	get, err := WithJobFile(func(key string) any { return ctx[key] })
	if err != nil {
		return Settings{}, err
	}
	return FromContext(get)
}

package names

import (
	"encoding/json"
	"testing"
)

func TestIsConfigKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		"configs/rf.yaml":        true,
		"configs/team/a/rf.yml":  true,
		"configs/run.json":       true,
		"configs/notes.txt":      false,
		"configs/rf.yaml.bak":    false,
		"artifacts/v1/rf.yaml":   false,
		"rf.yaml":                false,
		"Configs/rf.yaml":        false,
		"runs/abc.json":          false,
		"configs/":               false,
		"configs/.yaml":          true, // a suffix-only name is still a config key; the parser judges its content
		"configsx/rf.yaml":       false,
		"xconfigs/rf.yaml":       false,
		"configs/deep/er/x.json": true,
	} {
		if got := IsConfigKey(key); got != want {
			t.Errorf("IsConfigKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestConfigEventPatternJSON(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(ConfigEventPattern("my-bucket"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"detail":{"bucket":{"name":["my-bucket"]},"object":{"key":[{"wildcard":"configs/*.yaml"},{"wildcard":"configs/*.yml"},{"wildcard":"configs/*.json"}]}},"detail-type":["Object Created"],"source":["aws.s3"]}`
	if string(raw) != want {
		t.Errorf("pattern\n got %s\nwant %s", raw, want)
	}
}

func TestArtifactLayout(t *testing.T) {
	t.Parallel()
	folder := VersionFolder(ArtifactPrefix, "rf-v2")
	for got, want := range map[string]string{
		folder:                    "artifacts/rf-v2/",
		RunFolder(folder, "0a1b"): "artifacts/rf-v2/runs/0a1b/",
		PointerKey(folder):        "artifacts/rf-v2/latest.json",
		PointerKey(VersionFolder("out/artifacts/", "v1")): "out/artifacts/v1/latest.json",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

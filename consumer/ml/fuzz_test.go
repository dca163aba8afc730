package ml

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics and that any model it accepts
// predicts without panicking or looping, whatever the input vector.
func FuzzLoad(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "tree-model.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, 1.0, 2.0, 3.0, 4.0)
	f.Add([]byte(`{"format":"edp.model/v1","model_type":"RandomForestClassifier","feature_names":["a"],"class_names":["x","y"],"params":{},"trees":[{"node_count":1,"children_left":[-1],"children_right":[-1],"feature":[-1],"threshold":[0],"impurity":[0],"n_node_samples":[1],"weighted_n_node_samples":[1],"value":[[0.5,0.5]]}]}`), 0.0, 0.0, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, data []byte, a, b, c, d float64) {
		m, err := Load(data)
		if err != nil {
			return
		}
		x := make([]float64, len(m.FeatureNames))
		for i := range x {
			x[i] = []float64{a, b, c, d}[i%4]
		}
		if got := m.Predict(x); got < 0 || got >= len(m.ClassNames) {
			t.Fatalf("Predict = %d, outside the %d classes", got, len(m.ClassNames))
		}
	})
}

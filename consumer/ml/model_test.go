package ml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fitIris(t testing.TB, p Params) (*Model, *Dataset) {
	t.Helper()
	iris := Iris()
	train, test, err := TrainTestSplit(iris, SplitOptions{TestCount: 45, Shuffle: true, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Fit(iris.Subset(train), p)
	if err != nil {
		t.Fatal(err)
	}
	return m, iris.Subset(test)
}

var forest = Params{Type: RandomForest, NEstimators: 100, Bootstrap: true, Tree: TreeParams{MaxFeatures: 2, MaxDepth: 4}, Seed: 42}

func TestModelRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{{Type: DecisionTree, Seed: 42}, forest} {
		t.Run(p.Type, func(t *testing.T) {
			t.Parallel()
			m, test := fitIris(t, p)
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(data)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want, got := m.PredictAll(test), loaded.PredictAll(test)
			for i := range want {
				if want[i] != got[i] {
					t.Fatalf("row %d: loaded model predicts %d, original %d", i, got[i], want[i])
				}
			}
			pa, pb := make([]float64, 3), make([]float64, 3)
			for i := range test.Rows() {
				m.Proba(test.Row(i), pa)
				loaded.Proba(test.Row(i), pb)
				for c := range pa {
					if pa[c] != pb[c] {
						t.Fatalf("row %d: probabilities differ: %v vs %v", i, pa, pb)
					}
				}
			}
			again, err := loaded.Marshal()
			if err != nil || !bytes.Equal(data, again) {
				t.Errorf("Marshal(Load(b)) != b (err %v)", err)
			}
		})
	}
}

// TestForestDeterminism: the same settings give byte-identical models
// whatever the number of workers (and hence the scheduling).
func TestForestDeterminism(t *testing.T) {
	t.Parallel()
	var first []byte
	for _, workers := range []int{1, 2, 7, 32} {
		p := forest
		p.Workers = workers
		m, _ := fitIris(t, p)
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatalf("model with %d workers differs from the one with 1 worker", workers)
		}
	}
	p := forest
	p.Seed = 43
	m, _ := fitIris(t, p)
	if b, _ := m.Marshal(); bytes.Equal(first, b) {
		t.Error("a different seed gave the same forest")
	}
}

func TestModelFile(t *testing.T) {
	t.Parallel()
	m, _ := fitIris(t, Params{Type: DecisionTree, Tree: TreeParams{MaxDepth: 2}, Seed: 1})
	data, _ := m.Marshal()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"format", "model_type", "feature_names", "class_names", "params", "trees"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("model JSON lacks %q", key)
		}
	}
	if doc["format"] != Format {
		t.Errorf("format = %v, want %s", doc["format"], Format)
	}
}

func TestLoadRejectsCorruptModels(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(filepath.Join("testdata", "tree-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(good)
	if err != nil {
		t.Fatalf("Load(fixture): %v", err)
	}
	// The fixture is a depth-1 stump on petal_length at 2.45.
	if got := m.ClassNames[m.Predict([]float64{5.1, 3.5, 1.4, 0.2})]; got != "setosa" {
		t.Errorf("fixture predicts %s for a setosa, want setosa", got)
	}
	tests := map[string]struct{ old, new string }{
		"wrong format":        {`"edp.model/v1"`, `"edp.model/v9"`},
		"unknown type":        {`"DecisionTreeClassifier"`, `"SVC"`},
		"unknown field":       {`"node_count"`, `"nodes":1,"node_count"`},
		"child cycle":         {`"children_left":[1,-1,-1]`, `"children_left":[0,-1,-1]`},
		"child out of range":  {`"children_right":[2,-1,-1]`, `"children_right":[9,-1,-1]`},
		"half leaf":           {`"children_right":[2,-1,-1]`, `"children_right":[2,1,-1]`},
		"feature range":       {`"feature":[2,-1,-1]`, `"feature":[4,-1,-1]`},
		"short array":         {`"impurity":[0.6666666666666666,0,0.5]`, `"impurity":[0.5]`},
		"wrong value length":  {`[0,0.5,0.5]]`, `[0,0.5]]`},
		"not json":            {`{`, `[`},
		"no trees":            {`"trees":[{`, `"trees":[],"x":[{`},
		"empty class names":   {`"class_names":["setosa","versicolor","virginica"]`, `"class_names":[]`},
		"tree count mismatch": {`"trees":[{`, `"trees":[{"node_count":0},{`},
	}
	for name, tt := range tests {
		if !strings.Contains(string(good), tt.old) {
			t.Fatalf("%s: fixture lacks %s", name, tt.old)
		}
		bad := strings.Replace(string(good), tt.old, tt.new, 1)
		if _, err := Load([]byte(bad)); err == nil {
			t.Errorf("%s: Load succeeded, want error", name)
		}
	}
}

// A forest is fitted on several goroutines; a panic on one of them must
// reach the goroutine that called Fit (where the job recovers it) instead of
// ending the process. A class index outside ClassNames makes every tree
// builder index out of range.
func TestForestPanicReachesTheCaller(t *testing.T) {
	t.Parallel()
	bad := Iris().Subset([]int{0, 1, 50, 51, 100, 101})
	bad.Y = append([]int(nil), bad.Y...)
	bad.Y[3] = len(bad.ClassNames) + 5
	defer func() {
		v := recover()
		if v == nil {
			t.Fatal("Fit returned normally on a corrupt dataset")
		}
		if msg := fmt.Sprint(v); !strings.Contains(msg, "index out of range") {
			t.Errorf("panic %q, want the builder's index out of range", msg)
		}
	}()
	_, _ = Fit(bad, Params{Type: RandomForest, NEstimators: 8, Workers: 4, Seed: 1})
}

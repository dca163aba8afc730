package ml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Format identifies the model file format written by Marshal and read by
// Load. A change that old readers cannot handle gets a new version.
const Format = "edp.model/v1"

// modelFile is the JSON layout documented in docs/pipeline.md.
type modelFile struct {
	Format       string      `json:"format"`
	ModelType    string      `json:"model_type"`
	FeatureNames []string    `json:"feature_names"`
	ClassNames   []string    `json:"class_names"`
	Params       ModelParams `json:"params"`
	Trees        []treeFile  `json:"trees"`
}

// treeFile mirrors scikit-learn's tree_ arrays. Leaves have -1 children and
// feature, and threshold 0.
type treeFile struct {
	NodeCount            int         `json:"node_count"`
	ChildrenLeft         []int32     `json:"children_left"`
	ChildrenRight        []int32     `json:"children_right"`
	Feature              []int32     `json:"feature"`
	Threshold            []float64   `json:"threshold"`
	Impurity             []float64   `json:"impurity"`
	NNodeSamples         []int32     `json:"n_node_samples"`
	WeightedNNodeSamples []float64   `json:"weighted_n_node_samples"`
	Value                [][]float64 `json:"value"`
}

// Marshal renders m in the Format JSON layout. The output depends only on
// m, so equal models give identical bytes.
func (m *Model) Marshal() ([]byte, error) {
	f := modelFile{
		Format: Format, ModelType: m.Type,
		FeatureNames: m.FeatureNames, ClassNames: m.ClassNames,
		Params: m.Params, Trees: make([]treeFile, len(m.Trees)),
	}
	for i, t := range m.Trees {
		n := t.NodeCount()
		tf := treeFile{
			NodeCount: n, ChildrenLeft: t.left, ChildrenRight: t.right, Feature: t.feature,
			Threshold: t.threshold, Impurity: t.impurity, NNodeSamples: t.nSamples,
			WeightedNNodeSamples: t.wSamples, Value: make([][]float64, n),
		}
		for j := range n {
			tf.Value[j] = t.value[j*t.nClasses : (j+1)*t.nClasses]
		}
		f.Trees[i] = tf
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("marshal model: %w", err)
	}
	return append(b, '\n'), nil
}

// Load reads a model written by Marshal, checking its structure so that
// Predict cannot index out of range or loop on a corrupt file.
func Load(data []byte) (*Model, error) {
	var f modelFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("load model: format %q is not supported (want %q)", f.Format, Format)
	}
	if f.ModelType != DecisionTree && f.ModelType != RandomForest {
		return nil, fmt.Errorf("load model: unknown model_type %q", f.ModelType)
	}
	if len(f.FeatureNames) == 0 || len(f.ClassNames) == 0 {
		return nil, errors.New("load model: feature_names and class_names must not be empty")
	}
	if len(f.Trees) == 0 || (f.ModelType == DecisionTree && len(f.Trees) != 1) {
		return nil, fmt.Errorf("load model: %s with %d trees", f.ModelType, len(f.Trees))
	}
	m := &Model{Type: f.ModelType, FeatureNames: f.FeatureNames, ClassNames: f.ClassNames, Params: f.Params}
	for i, tf := range f.Trees {
		t, err := tf.tree(len(f.FeatureNames), len(f.ClassNames))
		if err != nil {
			return nil, fmt.Errorf("load model: tree %d: %w", i, err)
		}
		m.Trees = append(m.Trees, t)
	}
	return m, nil
}

func (tf treeFile) tree(nFeatures, nClasses int) (*Tree, error) {
	n := tf.NodeCount
	if n < 1 {
		return nil, errors.New("no nodes")
	}
	for name, l := range map[string]int{
		"children_left": len(tf.ChildrenLeft), "children_right": len(tf.ChildrenRight),
		"feature": len(tf.Feature), "threshold": len(tf.Threshold), "impurity": len(tf.Impurity),
		"n_node_samples": len(tf.NNodeSamples), "weighted_n_node_samples": len(tf.WeightedNNodeSamples),
		"value": len(tf.Value),
	} {
		if l != n {
			return nil, fmt.Errorf("%s has %d entries, node_count is %d", name, l, n)
		}
	}
	t := &Tree{
		nClasses: nClasses, left: tf.ChildrenLeft, right: tf.ChildrenRight, feature: tf.Feature,
		threshold: tf.Threshold, impurity: tf.Impurity, nSamples: tf.NNodeSamples,
		wSamples: tf.WeightedNNodeSamples, value: make([]float64, 0, n*nClasses),
	}
	for i := range n {
		l, r := int(tf.ChildrenLeft[i]), int(tf.ChildrenRight[i])
		if l < 0 || r < 0 {
			if l != -1 || r != -1 {
				return nil, fmt.Errorf("node %d: leaf must have both children -1", i)
			}
		} else {
			// Children after their parent rule out cycles: every path
			// strictly increases the node id.
			if l <= i || r <= i || l >= n || r >= n {
				return nil, fmt.Errorf("node %d: children %d, %d out of range", i, l, r)
			}
			if f := tf.Feature[i]; f < 0 || int(f) >= nFeatures {
				return nil, fmt.Errorf("node %d: feature %d out of range", i, f)
			}
			if math.IsNaN(tf.Threshold[i]) || math.IsInf(tf.Threshold[i], 0) {
				return nil, fmt.Errorf("node %d: threshold is not finite", i)
			}
		}
		if len(tf.Value[i]) != nClasses {
			return nil, fmt.Errorf("node %d: value has %d entries, want %d classes", i, len(tf.Value[i]), nClasses)
		}
		t.value = append(t.value, tf.Value[i]...)
	}
	return t, nil
}

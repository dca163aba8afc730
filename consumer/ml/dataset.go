// Package ml is edp's small, dependency-free classifier toolkit: the
// embedded Iris dataset, scikit-learn style train/test splitting, CART
// decision trees and random forests, evaluation metrics, and a portable JSON
// model format that Load reads back for prediction.
//
// Everything is deterministic: all randomness comes from math/rand/v2
// generators seeded by the caller (there is no global random state), and
// forests fitted in parallel are byte-identical to forests fitted serially.
// The algorithms follow scikit-learn's (best-split CART with midpoint
// thresholds, bootstrap counts as sample weights, soft voting) so that
// configs written for scikit-learn behave the same way here.
package ml

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

//go:embed iris.csv
var irisCSV []byte

// Dataset is a table of numeric features with one class label per row.
type Dataset struct {
	// FeatureNames names the columns of X.
	FeatureNames []string
	// ClassNames names the classes; Y holds indexes into it.
	ClassNames []string
	// X holds the features row-major: row i is X[i*F : (i+1)*F] where F is
	// len(FeatureNames).
	X []float64
	// Y holds one class index per row.
	Y []int
}

// Rows returns the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

// NumFeatures returns the number of feature columns.
func (d *Dataset) NumFeatures() int { return len(d.FeatureNames) }

// Row returns row i's features (a view into X; do not modify).
func (d *Dataset) Row(i int) []float64 {
	f := len(d.FeatureNames)
	return d.X[i*f : (i+1)*f : (i+1)*f]
}

// Subset returns a new dataset with the given rows, in that order.
func (d *Dataset) Subset(rows []int) *Dataset {
	f := d.NumFeatures()
	out := &Dataset{
		FeatureNames: d.FeatureNames,
		ClassNames:   d.ClassNames,
		X:            make([]float64, 0, len(rows)*f),
		Y:            make([]int, 0, len(rows)),
	}
	for _, r := range rows {
		out.X = append(out.X, d.Row(r)...)
		out.Y = append(out.Y, d.Y[r])
	}
	return out
}

// Iris returns Fisher's Iris dataset (150 rows, 4 features, 3 classes; the
// same values as scikit-learn's load_iris), parsed from the copy embedded in
// the binary. Each call returns a fresh copy the caller may modify.
func Iris() *Dataset {
	d, err := ParseCSV(irisCSV)
	if err != nil {
		panic("ml: embedded iris.csv is invalid: " + err.Error())
	}
	return d
}

// IrisCSV returns the embedded Iris CSV (header row, four feature columns,
// then the species name).
func IrisCSV() []byte { return bytes.Clone(irisCSV) }

// ParseCSV reads a dataset from CSV: a header row, numeric feature columns,
// and the class name in the last column. Classes are numbered in order of
// first appearance.
func ParseCSV(data []byte) (*Dataset, error) {
	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read CSV header: %w", err)
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("read CSV header: need at least one feature and a class column, got %d columns", len(header))
	}
	d := &Dataset{FeatureNames: slices.Clone(header[:len(header)-1])}
	classes := map[string]int{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read CSV: %w", err)
		}
		for i, s := range rec[:len(rec)-1] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("read CSV line %d: column %s: %q is not a finite number", line, header[i], s)
			}
			d.X = append(d.X, v)
		}
		name := rec[len(rec)-1]
		c, ok := classes[name]
		if !ok {
			c = len(d.ClassNames)
			classes[name] = c
			d.ClassNames = append(d.ClassNames, name)
		}
		d.Y = append(d.Y, c)
	}
	if len(d.Y) == 0 {
		return nil, fmt.Errorf("read CSV: no rows")
	}
	return d, nil
}

// WriteCSV writes d in the format ParseCSV reads. If split is non-nil, it
// adds a final "split" column with split[i] ("train" or "test") per row.
func (d *Dataset) WriteCSV(w io.Writer, split []string) error {
	cw := csv.NewWriter(w)
	header := append(slices.Clone(d.FeatureNames), "class")
	if split != nil {
		header = append(header, "split")
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	for i := range d.Rows() {
		for j, v := range d.Row(i) {
			rec[j] = strconv.FormatFloat(v, 'f', -1, 64)
		}
		rec[d.NumFeatures()] = d.ClassNames[d.Y[i]]
		if split != nil {
			rec[d.NumFeatures()+1] = split[i]
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

package job

import (
	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/ml"
)

// Check parses a config and resolves it against the embedded Iris dataset
// exactly as Run does before it trains: every check that needs no store.
// A config Check accepts can still fail in Run only for reasons outside
// the config (reading or writing the store, a timeout).
//
// The error is Parse's *config.Error, or the resolution error with the text
// Run reports (and records) after its "permanent failure: " prefix.
func Check(body []byte) (*config.Config, error) {
	cfg, err := config.Parse(body)
	if err != nil {
		return nil, err
	}
	if _, err := resolve(cfg, ml.Iris()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// plan is a config resolved against a dataset: the split and the fit
// settings, all but their seeds (which never change whether they are valid).
type plan struct {
	split ml.SplitOptions
	fit   ml.Params
}

// resolve turns the config's scikit-learn style settings (fractions, names)
// into counts for d and checks them as the split and the fit would.
func resolve(cfg *config.Config, d *ml.Dataset) (plan, error) {
	nTest, err := cfg.Split.TestCount(d.Rows())
	if err != nil {
		return plan{}, err
	}
	split := ml.SplitOptions{TestCount: nTest, Shuffle: cfg.Split.Shuffle, Stratify: cfg.Split.Stratify}
	if err := split.Check(d); err != nil {
		return plan{}, err
	}
	p := cfg.Model.Params
	maxFeatures, err := p.MaxFeatures.Resolve(d.NumFeatures())
	if err != nil {
		return plan{}, err
	}
	nTrain := d.Rows() - nTest
	fit := ml.Params{
		Type: cfg.Model.Type,
		Tree: ml.TreeParams{
			Criterion: p.Criterion, MaxDepth: p.MaxDepth, MaxFeatures: maxFeatures,
			MinSamplesSplit: p.MinSplit(nTrain), MinSamplesLeaf: p.MinLeaf(nTrain),
		},
		NEstimators: p.NEstimators, Bootstrap: p.Bootstrap,
	}
	if err := fit.Check(); err != nil {
		return plan{}, err
	}
	return plan{split: split, fit: fit}, nil
}

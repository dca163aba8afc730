package ml

// Metrics is the evaluation of predictions against true labels, with
// scikit-learn's definitions (a ratio with a zero denominator is 0).
type Metrics struct {
	// Accuracy is the fraction of correct predictions.
	Accuracy float64 `json:"accuracy"`
	// Classes holds per-class precision, recall, F1 and support.
	Classes []ClassMetrics `json:"classes"`
	// MacroAvg is the unweighted mean over classes.
	MacroAvg Averages `json:"macro_avg"`
	// WeightedAvg is the mean over classes weighted by support.
	WeightedAvg Averages `json:"weighted_avg"`
	// Labels names the rows and columns of ConfusionMatrix.
	Labels []string `json:"labels"`
	// ConfusionMatrix[i][j] counts samples of true class i predicted as j.
	ConfusionMatrix [][]int `json:"confusion_matrix"`
}

// ClassMetrics are one class's scores.
type ClassMetrics struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Averages are averaged precision, recall and F1.
type Averages struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Evaluate scores predictions pred against truth; both hold indexes into
// classNames and have the same length.
func Evaluate(classNames []string, truth, pred []int) Metrics {
	k := len(classNames)
	m := Metrics{Labels: classNames, ConfusionMatrix: make([][]int, k), Classes: make([]ClassMetrics, k)}
	for i := range m.ConfusionMatrix {
		m.ConfusionMatrix[i] = make([]int, k)
	}
	correct := 0
	for i := range truth {
		m.ConfusionMatrix[truth[i]][pred[i]]++
		if truth[i] == pred[i] {
			correct++
		}
	}
	if len(truth) > 0 {
		m.Accuracy = float64(correct) / float64(len(truth))
	}
	for c := range k {
		tp := m.ConfusionMatrix[c][c]
		support, predicted := 0, 0
		for j := range k {
			support += m.ConfusionMatrix[c][j]
			predicted += m.ConfusionMatrix[j][c]
		}
		cm := ClassMetrics{Class: classNames[c], Support: support}
		cm.Precision = ratio(tp, predicted)
		cm.Recall = ratio(tp, support)
		if cm.Precision+cm.Recall > 0 {
			cm.F1 = 2 * cm.Precision * cm.Recall / (cm.Precision + cm.Recall)
		}
		m.Classes[c] = cm
		m.MacroAvg.Precision += cm.Precision / float64(k)
		m.MacroAvg.Recall += cm.Recall / float64(k)
		m.MacroAvg.F1 += cm.F1 / float64(k)
		if n := len(truth); n > 0 {
			w := float64(support) / float64(n)
			m.WeightedAvg.Precision += w * cm.Precision
			m.WeightedAvg.Recall += w * cm.Recall
			m.WeightedAvg.F1 += w * cm.F1
		}
	}
	return m
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

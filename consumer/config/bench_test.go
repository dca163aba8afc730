package config

import "testing"

// BenchmarkParse measures parse + validate of the reference random-forest
// config (YAML) and of a JSON config.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"random-forest.yaml", "decision-tree.json"} {
		b.Run(name, func(b *testing.B) {
			data := readFixtureB(b, name)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package schema

import (
	"os"
	"regexp"
	"testing"
)

// TestREADMEExamples validates every example in README.md against the schema
// of the type in the heading above it, and wants one example per type.
func TestREADMEExamples(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example := regexp.MustCompile("(?s)\n### `([a-z0-9.]+)`\n.*?```json\n(.*?)```")
	found := map[string]bool{}
	for _, m := range example.FindAllSubmatch(b, -1) {
		typ, doc := string(m[1]), m[2]
		found[typ] = true
		if err := Validate(typ, doc); err != nil {
			t.Errorf("README example of %s: %v", typ, err)
		}
	}
	for _, typ := range Types() {
		if !found[typ] && typ != TypeEnvelope {
			t.Errorf("README has no example of %s", typ)
		}
	}
}

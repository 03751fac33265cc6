package check

import (
	"bytes"
	"os"
	"regexp"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestAlertRules: contrib's alert rules are well-formed and name only
// metrics walship metrics writes.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("../contrib/prometheus/walship.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("walship.rules.yml: %v", err)
	}

	// Every metric a full report gives.
	f := healthy(t)
	f.History(2, [2]uint64{1, 6})
	f.Segments(2, 6, 7)
	rep := runRepo(t, f, primaryAt(inSeg(7, 0)), Options{})
	rep.connect, rep.Ready = true, &Backlog{Count: 1, OldestTime: now.Add(-time.Second)}
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, rep); err != nil {
		t.Fatal(err)
	}
	written := parseMetrics(t, buf.Bytes())

	name := regexp.MustCompile(`\bwalship_[a-z_]+\b`)
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: want alert, expr, a severity and a summary", r)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			names := name.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: %q uses no walship metric", r.Alert, r.Expr)
			}
			for _, n := range names {
				if written[n] == nil {
					t.Errorf("%s: %s is not a metric walship metrics writes", r.Alert, n)
				}
			}
		}
	}
	if rules < 8 {
		t.Errorf("%d rules", rules)
	}
}

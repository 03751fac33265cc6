package check

import (
	"bytes"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walship/walship/internal/testenv/fakerepo"
)

// parseMetrics parses text exposition with Prometheus' own parser.
func parseMetrics(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the metrics: %v\n%s", err, text)
	}
	return mfs
}

// metricValue is the value of the series of name with the label pairs
// given ("timeline", "2"); ok is false when there is none.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		if m.Gauge != nil {
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	f := healthy(t) // timeline 1, segments 1..6, a backup in 2..3 an hour old
	f.History(2, [2]uint64{1, 6})
	f.Segments(2, 6, 8)
	ageAll(f, 1, 1, 6, now.Add(-2*time.Hour))
	ageAll(f, 2, 6, 8, now.Add(-time.Minute))
	f.Age(seg(2, 8), now.Add(-30*time.Second))
	f.Delete(seg(2, 7))
	s := primaryAt(inSeg(8, 0x100))
	s.Timeline = 2
	rep := runRepo(t, f, s, Options{})
	rep.Ready = &Backlog{Count: 3, Oldest: seg(2, 9).String(), OldestTime: now.Add(-90 * time.Second)}
	rep.Time = now
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, rep); err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, buf.Bytes())
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"walship_repository_up", nil, 1},
		{"walship_segments", []string{"timeline", "1"}, 6},
		{"walship_segments", []string{"timeline", "2"}, 2},
		{"walship_last_archived_timestamp_seconds", []string{"timeline", "1"}, float64(now.Add(-2 * time.Hour).Unix())},
		{"walship_last_archived_timestamp_seconds", []string{"timeline", "2"}, float64(now.Add(-30 * time.Second).Unix())},
		{"walship_last_archived_lsn", []string{"timeline", "2"}, float64(9 * fakerepo.SegSize)},
		{"walship_last_archived_lsn", []string{"timeline", "1"}, float64(7 * fakerepo.SegSize)},
		{"walship_missing_segments", nil, 1},
		{"walship_second_writers", nil, 0},
		{"walship_backups", nil, 1},
		{"walship_newest_backup_restorable", nil, 1},
		{"walship_newest_restorable_backup_age_seconds", nil, 3600},
		{"walship_newest_restorable_backup_timestamp_seconds", nil, float64(now.Add(-time.Hour).Unix())},
		{"walship_server_up", nil, 1},
		{"walship_server_ready_files", nil, 3},
		{"walship_server_oldest_ready_age_seconds", nil, 90},
		{"walship_check_status", nil, float64(Critical)},
		{"walship_check", []string{"check", "gaps"}, float64(Critical)},
		{"walship_check", []string{"check", "identity"}, float64(OK)},
		{"walship_metrics_timestamp_seconds", nil, float64(now.Unix())},
	} {
		got, ok := metricValue(mfs, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	var stored float64
	if v, ok := metricValue(mfs, "walship_stored_bytes"); !ok || v <= 0 {
		t.Errorf("walship_stored_bytes = %v", v)
	} else {
		stored = v
	}
	if v, _ := metricValue(mfs, "walship_wal_bytes"); v < 8*float64(fakerepo.SegSize) || v <= stored {
		t.Errorf("walship_wal_bytes = %v (stored %v)", v, stored)
	}
	for name, mf := range mfs {
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want a documented gauge", name, mf.GetType(), mf.GetHelp())
		}
	}
}

// Without a repository (it could not be read) the file still says so,
// so that an alert fires instead of the metrics going stale.
func TestMetricsRepositoryDown(t *testing.T) {
	rep := &Report{Time: now}
	rep.add("repository", Critical, "cannot read")
	rep.finish()
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, rep); err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, buf.Bytes())
	if v, ok := metricValue(mfs, "walship_repository_up"); !ok || v != 0 {
		t.Errorf("walship_repository_up = %v, %v; want 0", v, ok)
	}
	if v, _ := metricValue(mfs, "walship_check_status"); v != float64(Critical) {
		t.Errorf("walship_check_status = %v", v)
	}
	if _, ok := metricValue(mfs, "walship_segments"); ok {
		t.Error("walship_segments without a repository")
	}
}

// The receiver's series carry what the server says of it.
func TestMetricsReceiver(t *testing.T) {
	f := healthy(t)
	s := primaryAt(inSeg(6, 0x100))
	s.Receiver = &Receiver{Slot: "walship", Exists: true, Connected: true, AppName: "walship", State: "streaming", SyncState: "sync",
		LagBytes: 8192, LagSeconds: 0.25, Retained: 3 << 20}
	rep := runRepo(t, f, s, Options{Slot: "walship"})
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, rep); err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, buf.Bytes())
	for name, want := range map[string]float64{
		"walship_receiver_slot_exists":         1,
		"walship_receiver_connected":           1,
		"walship_receiver_synchronous":         1,
		"walship_receiver_lag_bytes":           8192,
		"walship_receiver_lag_seconds":         0.25,
		"walship_receiver_slot_retained_bytes": 3 << 20,
	} {
		if got, ok := metricValue(mfs, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
}

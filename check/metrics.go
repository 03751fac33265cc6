package check

import (
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/wal"
)

// WriteMetrics writes what a report holds in the Prometheus text format,
// for node_exporter's textfile collector: the repository (segments, bytes,
// the last archive of each timeline, gaps, second writers, the newest
// restorable base backup), the server's .ready backlog when it was read,
// and the status of each check.
func WriteMetrics(w io.Writer, rep *Report) error {
	reg := prometheus.NewPedanticRegistry()
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "walship", Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	set := func(name, help string, v float64) { gauge(name, help).WithLabelValues().Set(v) }

	set("metrics_timestamp_seconds", "When these metrics were made (Unix time).", unix(rep))
	set("check_status", "The worst status of walship check's findings: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a forced switch is not part of walship metrics).", float64(rep.Status))
	checks := gauge("check", "The worst status of each of walship check's checks: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", "check")
	worst := map[string]Status{}
	for _, f := range rep.Findings {
		worst[f.Check] = Worse(worst[f.Check], f.Status)
	}
	for name, s := range worst {
		checks.WithLabelValues(name).Set(float64(s))
	}

	up := 0.0
	if rep.Catalog != nil {
		up = 1
	}
	set("repository_up", "1 when the repository could be read and listed.", up)
	if c := rep.Catalog; c != nil && c.SegSize != 0 {
		s := c.Totals()
		set("stored_bytes", "Bytes stored in the repository, all files.", float64(s.StoredBytes))
		set("wal_bytes", "Bytes of WAL the repository holds, uncompressed.", float64(s.RawBytes))
		set("history_files", "Timeline history files stored.", float64(s.Histories))
		segs := gauge("segments", "WAL segments stored, by timeline.", "timeline")
		lastTime := gauge("last_archived_timestamp_seconds", "When the most recently archived segment of each timeline was stored (Unix time).", "timeline")
		lastLSN := gauge("last_archived_lsn", "The end of the highest segment stored of each timeline, as a WAL position in bytes.", "timeline")
		type last struct {
			n         int
			time, end float64
		}
		byTL := map[uint32]*last{}
		for _, f := range c.Segments(0) {
			l := byTL[f.Name.Timeline]
			if l == nil {
				l = &last{}
				byTL[f.Name.Timeline] = l
			}
			l.n++
			l.time = max(l.time, float64(f.Info.ModTime.UnixNano())/1e9)
			l.end = max(l.end, float64(f.Name.StartLSN(c.SegSize)+wal.LSN(c.SegSize)))
		}
		for tli, l := range byTL {
			tl := strconv.FormatUint(uint64(tli), 10)
			segs.WithLabelValues(tl).Set(float64(l.n))
			lastTime.WithLabelValues(tl).Set(l.time)
			lastLSN.WithLabelValues(tl).Set(l.end)
		}
		gaps, _ := catalog.Gaps(c, catalog.TimelineInfos(c))
		missing := 0.0
		for _, g := range gaps {
			missing += float64(g.Count)
		}
		set("missing_segments", "Segments missing where a timeline needs them (walship verify's gaps).", missing)
		set("second_writers", "Older timelines still archived after a newer one branched off (two servers write into the repository).", float64(len(catalog.SecondWriters(c, rep.tailGrace))))
		bs := c.BackupStatuses()
		set("backups", "Base backups in the repository (stored or registered with walship backup, or known from backup history files).", float64(len(bs)))
		if len(bs) > 0 {
			set("newest_backup_restorable", "1 when the newest base backup can be restored from the repository.", bool01(bs[0].Restorable))
		}
		for i, b := range c.Backups() {
			if bs[i].Restorable {
				set("newest_restorable_backup_timestamp_seconds", "When the newest restorable base backup was taken (Unix time).", float64(b.Time.Unix()))
				set("newest_restorable_backup_age_seconds", "How long ago the newest restorable base backup was taken.", rep.Time.Sub(b.Time).Seconds())
				break
			}
		}
	}
	if rep.Server != nil || rep.connect {
		set("server_up", "1 when the server could be connected to and read.", bool01(rep.Server != nil))
	}
	if s := rep.Server; s != nil && s.Receiver != nil {
		rc := s.Receiver
		set("receiver_slot_exists", "1 when walship receive's replication slot exists on the server.", bool01(rc.Exists))
		set("receiver_connected", "1 when walship receive is connected and streaming through its slot.", bool01(rc.Connected))
		set("receiver_synchronous", "1 when the server waits for walship receive (sync_state sync or quorum).", bool01(rc.SyncState == "sync" || rc.SyncState == "quorum"))
		set("receiver_lag_bytes", "WAL the server has flushed that is not durable in the repository yet (from walship receive's flush position, or its slot's restart_lsn).", float64(rc.LagBytes))
		set("receiver_lag_seconds", "How long the oldest WAL not yet durable in the repository has waited (flush_lag; disconnected: since the newest streamed data was stored).", rc.LagSeconds)
		set("receiver_slot_retained_bytes", "WAL the receiver's slot keeps on the server.", float64(rc.Retained))
	}
	if b := rep.Ready; b != nil {
		set("server_ready_files", "WAL files the server has marked ready for archiving and not archived yet (.ready files).", float64(b.Count))
		age := 0.0
		if b.Count > 0 {
			age = rep.Time.Sub(b.OldestTime).Seconds()
		}
		set("server_oldest_ready_age_seconds", "How long the oldest .ready file has waited to be archived (0 without any).", age)
	}

	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

func unix(rep *Report) float64 { return float64(rep.Time.UnixNano()) / 1e9 }

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package audit

import (
	"maps"
	"strconv"
	"time"
)

// CapDeny is the row of a capability the kernel or the supervisor refused:
// type "cap.deny", result deny, with the errno the agent saw.
func CapDeny(aid uint64, cap, object string, errno, pid int, kseq uint64, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeCapDeny, Cap: cap, Object: object, Result: ResultDeny,
		Errno: errno, PID: pid, KSeq: kseq, Detail: detail}
}

// CapUse is the row of an allowed use the audit policy wants on record.
func CapUse(aid uint64, cap, object string, pid int, kseq uint64, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeCapUse, Cap: cap, Object: object, Result: ResultAllow,
		PID: pid, KSeq: kseq, Detail: detail}
}

// CapDenyAggregate is the row that stands for count further denies of one
// (agent, capability, object) after its first, which had its own row
// (issue 19): type "cap.deny" like a single deny, KSeq the last source
// sequence, and in Detail count, first_kseq, last_kseq, first_time and
// last_time (RFC 3339, nanoseconds). A reader sums Detail["count"] over
// deny rows, a row without one counting 1 (DenyCount).
func CapDenyAggregate(aid uint64, cap, object string, errno, pid int, count, firstKSeq, lastKSeq uint64, first, last time.Time, detail map[string]string) Record {
	d := maps.Clone(detail)
	if d == nil {
		d = map[string]string{}
	}
	d["count"] = strconv.FormatUint(count, 10)
	d["first_kseq"] = strconv.FormatUint(firstKSeq, 10)
	d["last_kseq"] = strconv.FormatUint(lastKSeq, 10)
	d["first_time"] = first.UTC().Format(time.RFC3339Nano)
	d["last_time"] = last.UTC().Format(time.RFC3339Nano)
	return Record{AID: aid, Type: TypeCapDeny, Cap: cap, Object: object, Result: ResultDeny,
		Errno: errno, PID: pid, KSeq: lastKSeq, Detail: d}
}

// CapUseAggregate is the row that stands for count further allowed uses
// of one (agent, capability, object) after its first, which had its own
// row (issue 19): type "cap.use" like a single use, so a query by type
// or capability finds it, KSeq the last source sequence, and in Detail
// count, first_kseq, last_kseq, first_time and last_time as
// CapDenyAggregate's. A reader sums RowCount over use rows.
func CapUseAggregate(aid uint64, cap, object string, pid int, count, firstKSeq, lastKSeq uint64, first, last time.Time, detail map[string]string) Record {
	d := spanDetail(detail, count, first, last)
	d["first_kseq"] = strconv.FormatUint(firstKSeq, 10)
	d["last_kseq"] = strconv.FormatUint(lastKSeq, 10)
	return Record{AID: aid, Type: TypeCapUse, Cap: cap, Object: object, Result: ResultAllow,
		PID: pid, KSeq: lastKSeq, Detail: d}
}

// spanDetail is a copy of detail with an aggregate's count and time span.
func spanDetail(detail map[string]string, count uint64, first, last time.Time) map[string]string {
	d := maps.Clone(detail)
	if d == nil {
		d = map[string]string{}
	}
	d["count"] = strconv.FormatUint(count, 10)
	d["first_time"] = first.UTC().Format(time.RFC3339Nano)
	d["last_time"] = last.UTC().Format(time.RFC3339Nano)
	return d
}

// DenyCount is how many denies a deny row stands for: its Detail["count"]
// (an aggregate row), or 1.
func DenyCount(r Record) uint64 { return RowCount(r) }

// RowCount is how many events any row stands for: Detail["count"] of an
// aggregate row (cap.deny, cap.use, inference.call), or 1.
func RowCount(r Record) uint64 {
	if n, err := strconv.ParseUint(r.Detail["count"], 10, 64); err == nil && n > 0 {
		return n
	}
	return 1
}

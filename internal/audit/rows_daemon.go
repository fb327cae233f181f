package audit

import (
	"strconv"
	"time"
)

// Rows of the daemon itself, the trust store and the inference broker.

// capInference is the capability inference rows are about.
const capInference = "inference"

// InferenceCall is the row of an inference call of agent aid (0: a local
// process that is not an agent): Object the model (or, for a caller
// refused before it named one, the request path); deny when refused, with
// errno ECAPABILITY when the capability was missing. Detail: the call's
// accounting (tokens, reserved, queue_wait_ms, duration_ms, status,
// result, endpoint, stream, reason) or, for a refused caller, its pid and
// how many rows were suppressed.
func InferenceCall(aid uint64, object string, allowed bool, errno int, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeInferenceCall, Cap: capInference, Object: object,
		Result: resultOf(allowed), Errno: errno, Detail: detail}
}

// InferenceCallAggregate is the row that stands for count further
// finished (result ok) calls of agent aid to one (model, endpoint,
// stream) after its first, which had its own row (issue 19): type
// "inference.call", result allow, and in Detail count, tokens_in and
// tokens_out (the sums over the calls), first_time and last_time (when
// the first and last finished), result "ok", and what detail adds
// (endpoint, stream). The tokens of the chain's inference.call rows add
// up to the broker's usage counters.
func InferenceCallAggregate(aid uint64, model string, count uint64, tokensIn, tokensOut int64, first, last time.Time, detail map[string]string) Record {
	d := spanDetail(detail, count, first, last)
	d["tokens_in"] = strconv.FormatInt(tokensIn, 10)
	d["tokens_out"] = strconv.FormatInt(tokensOut, 10)
	d["result"] = "ok"
	return Record{AID: aid, Type: TypeInferenceCall, Cap: capInference, Object: model,
		Result: ResultAllow, Detail: d}
}

// InferenceAdmit is the row of an inference call admitted past the queue,
// Detail as InferenceCall's.
func InferenceAdmit(aid uint64, model string, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeInferenceAdmit, Cap: capInference, Object: model,
		Result: ResultAllow, Detail: detail}
}

// TrustAdd is the row of a signing key (keyID) added to the trust store by
// uid, recorded before it is added.
func TrustAdd(keyID string, uid uint32) Record {
	return Record{Type: TypeTrustAdd, Object: keyID, Result: ResultAllow,
		Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10)}}
}

// DaemonStart is the first row of a coconutd run: its version and pid, its
// host key and the enforcer it loaded ("" when none could load).
func DaemonStart(version string, pid int, hostKeyID, enforcer string) Record {
	return Record{Type: TypeDaemonStart, Object: version, Result: ResultAllow, PID: pid,
		Detail: map[string]string{"host_key_id": hostKeyID, "enforcer": enforcer}}
}

// DaemonStop is the last row of a coconutd run.
func DaemonStop(version string, pid int) Record {
	return Record{Type: TypeDaemonStop, Object: version, Result: ResultAllow, PID: pid}
}

// ChainTruncated is the row Open appends after cutting a torn tail: bytes
// cut from segment at offset.
func ChainTruncated(segment string, offset, bytes int64) Record {
	return Record{Type: TypeTruncated, Object: segment, Detail: map[string]string{
		"segment": segment,
		"offset":  strconv.FormatInt(offset, 10),
		"bytes":   strconv.FormatInt(bytes, 10),
	}}
}

// AuditDelete is the row of a deletion the user asked for (`coconut audit
// archive --delete`): rows first..last, in segments segments of bytes
// bytes (compressed), deleted by by. It is written before any file is
// removed: no row, no deletion.
func AuditDelete(first, last uint64, segments int, bytes int64, by string) Record {
	return Record{Type: TypeAuditDelete, Object: strconv.FormatUint(first, 10) + ".." + strconv.FormatUint(last, 10),
		Result: ResultAllow, Detail: map[string]string{
			"first":    strconv.FormatUint(first, 10),
			"last":     strconv.FormatUint(last, 10),
			"segments": strconv.Itoa(segments),
			"bytes":    strconv.FormatInt(bytes, 10),
			"by":       by,
		}}
}

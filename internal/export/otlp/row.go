package otlp

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/coconut-os/coconut/internal/audit"
)

// Attribute keys of Coconut's own (no semantic convention has them).
const (
	KeySeq      = "coconut.audit.seq"
	KeyHash     = "coconut.audit.hash"
	KeyPrevHash = "coconut.audit.prev_hash"
	KeyType     = "coconut.audit.type"
	KeyCap      = "coconut.audit.cap"
	KeyObject   = "coconut.audit.object"
	KeyResult   = "coconut.audit.result"
	KeyErrno    = "coconut.audit.errno"
	KeyPID      = "coconut.audit.pid"
	KeyKSeq     = "coconut.audit.kseq"
	// KeyDetail prefixes each detail key: coconut.audit.detail.NAME.
	KeyDetail = "coconut.audit.detail."
	// KeyHostKeyID is a resource attribute: the host key that signs this
	// chain's checkpoints.
	KeyHostKeyID = "coconut.host_key_id"
)

// genesisHash is the hex head before seq 1.
var genesisHash = strings.Repeat("0", 2*audit.HeadSize)

// logRecord is the OpenTelemetry log record of row r, whose predecessor's
// hash is prev. The body is r's canonical bytes, so a receiver can
// recompute r's hash from prev and the body alone.
func logRecord(r audit.Record, prev string) (otellog.Record, error) {
	body, err := audit.RecordBytes(r)
	if err != nil {
		return otellog.Record{}, err
	}
	var lr otellog.Record
	lr.SetTimestamp(r.Time)
	lr.SetEventName(r.Type)
	lr.SetBody(attribute.StringValue(string(body)))
	if r.Result == audit.ResultDeny {
		lr.SetSeverity(otellog.SeverityWarn)
		lr.SetSeverityText("WARN")
	} else {
		lr.SetSeverity(otellog.SeverityInfo)
		lr.SetSeverityText("INFO")
	}
	kv := make([]attribute.KeyValue, 0, 16+len(r.Detail))
	kv = append(kv,
		attribute.Int64(KeySeq, int64(r.Seq)),
		attribute.String(KeyHash, r.Hash),
		attribute.String(KeyPrevHash, prev),
		attribute.String(KeyType, r.Type),
		attribute.String(KeyResult, r.Result),
	)
	if r.AID != 0 {
		kv = append(kv, semconv.GenAIAgentID(strconv.FormatUint(r.AID, 10)))
	}
	for _, f := range [...]struct{ k, v string }{{KeyCap, r.Cap}, {KeyObject, r.Object}} {
		if f.v != "" {
			kv = append(kv, attribute.String(f.k, f.v))
		}
	}
	for _, f := range [...]struct {
		k string
		v int64
	}{{KeyErrno, int64(r.Errno)}, {KeyPID, int64(r.PID)}, {KeyKSeq, int64(r.KSeq)}} {
		if f.v != 0 {
			kv = append(kv, attribute.Int64(f.k, f.v))
		}
	}
	kv = append(kv, genAI(r)...)
	for k, v := range r.Detail {
		kv = append(kv, attribute.String(KeyDetail+k, v))
	}
	lr.AddAttributes(kv...)
	return lr, nil
}

// genAI gives the GenAI semantic convention attributes of the rows that
// have their meaning: an agent created, an inference call, a tool (an
// application capability) presented.
func genAI(r audit.Record) []attribute.KeyValue {
	var out []attribute.KeyValue
	switch r.Type {
	case audit.TypeAgentSpawn:
		out = append(out, semconv.GenAIOperationNameCreateAgent)
		if n := r.Detail["name"]; n != "" {
			out = append(out, semconv.GenAIAgentName(n))
		}
	case audit.TypeInferenceCall, audit.TypeInferenceAdmit:
		switch r.Detail["endpoint"] {
		case "embeddings":
			out = append(out, semconv.GenAIOperationNameEmbeddings)
		case "completions":
			out = append(out, semconv.GenAIOperationNameTextCompletion)
		default:
			out = append(out, semconv.GenAIOperationNameChat)
		}
		if r.Object != "" && !strings.HasPrefix(r.Object, "/") { // a path: refused before it named a model
			out = append(out, semconv.GenAIRequestModel(r.Object))
		}
		for _, t := range [...]struct {
			key string
			f   func(int) attribute.KeyValue
		}{{"tokens_in", semconv.GenAIUsageInputTokens}, {"tokens_out", semconv.GenAIUsageOutputTokens}} {
			if n, err := strconv.Atoi(r.Detail[t.key]); err == nil && n > 0 {
				out = append(out, t.f(n))
			}
		}
	case audit.TypeCapPresent:
		if strings.HasPrefix(r.Cap, "x.") {
			out = append(out, semconv.GenAIOperationNameExecuteTool, semconv.GenAIToolName(r.Cap))
		}
	}
	return out
}

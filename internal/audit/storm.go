package audit

import (
	"maps"
	"strconv"
	"time"
)

// DenyStorm is the row of a deny storm (issue 19): agent aid was denied
// denies times in over, past its on_deny_storm rate (denies a second over
// window), and coconutd did action to it (throttle, quarantine, kill).
// Type "agent.deny_storm", Object the action, Result deny. It is one row
// for the whole storm episode, whatever the count: the Center and
// notifications show it as one event. A quarantine or kill also has its
// agent.state row.
func DenyStorm(aid uint64, action string, pid int, denies uint64, over time.Duration, rate int, window time.Duration, detail map[string]string) Record {
	d := maps.Clone(detail)
	if d == nil {
		d = map[string]string{}
	}
	d["denies"] = strconv.FormatUint(denies, 10)
	d["over_ms"] = strconv.FormatInt(over.Milliseconds(), 10)
	d["rate"] = strconv.Itoa(rate)
	d["window_ms"] = strconv.FormatInt(window.Milliseconds(), 10)
	return Record{AID: aid, Type: TypeAgentDenyStorm, Object: action, Result: ResultDeny, PID: pid, Detail: d}
}

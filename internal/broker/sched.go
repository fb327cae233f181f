package broker

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// scheduler owns every admission decision: slots, the context pool, the
// per-tenant budgets and the order (VTC or FIFO). One mutex guards it; it
// is never held across I/O, only across the O(tenants) dispatch loop.
type scheduler struct {
	mu sync.Mutex

	policy     string
	slots      int
	ctxTokens  int64
	headroom   int // <0: off
	window     time.Duration
	reject     bool // OverBudgetReject
	kvPerToken int64
	maxQueue   int
	maxQueueT  int // per tenant
	now        func() time.Time
	hooks      *hookRunner
	onNew      func(t *tstate) // metrics children for a new tenant

	inflight int
	ctxUsed  int64
	queued   int
	seq      uint64
	// lastServed is the counter of the tenant that last left the backlog:
	// a tenant backlogged while no one else is starts there (the paper's
	// rule), so idle time is never banked as credit.
	lastServed float64
	tenants    map[uint64]*tstate
	users      map[uint32]*ustate     // per-user budgets (userbudget.go), never forgotten
	fifo       waitList[arrivalLinks] // every queued waiter in arrival order (FIFO policy)
	closed     bool
	started    time.Time
}

// tstate is one tenant's scheduling and budget state.
type tstate struct {
	aid       uint64
	weight    float64 // Weight/100, > 0
	counter   float64 // virtual token counter, in weighted tokens
	queue     waitList[tenantLinks]
	inflight  int
	ctx       int64 // context tokens (prompt + max_tokens) in flight: the KV share
	reserved  int64 // tokens reserved by requests in flight
	limit     int64
	kvBytes   int64
	usedSeen  int64 // Tenant.TokensUsed as last reported
	base      int64 // Tenant.TokensUsed at first sight
	settled   int64 // tokens settled by this broker
	lastSeen  time.Time
	blocked   bool
	reason    string
	tokensIn  int64
	tokensOut int64
	forgotten bool
	user      *ustate // the user's budget; nil when none
	metrics   tenantMetrics
}

// used is the fail-closed view of what the tenant has spent.
func (t *tstate) used() int64 { return max(t.usedSeen, t.base+t.settled) }

// waiter is one request from enqueue to release.
type waiter struct {
	t         *tstate
	prompt    int64
	need      int64
	seq       uint64
	enq       time.Time
	admitted  time.Time
	ready     chan error // buffered 1: nil when admitted, or the refusal
	state     int
	charged   int64   // output tokens charged to the counter so far
	byTenant  link    // its tenant's queue
	byArrival link    // the global arrival order
	user      *ustate // the user budget its reservation was taken from
}

const (
	wQueued = iota
	wAdmitted
	wDone
)

func newScheduler(cfg Config, hooks *hookRunner) *scheduler {
	s := &scheduler{
		policy:     cfg.Policy,
		slots:      cfg.Slots,
		ctxTokens:  cfg.ContextTokens,
		headroom:   cfg.Headroom,
		window:     cfg.ActiveWindow,
		reject:     cfg.OverBudget == OverBudgetReject,
		kvPerToken: cfg.KVBytesPerToken,
		maxQueue:   cfg.MaxQueue,
		maxQueueT:  cfg.MaxQueuePerAgent,
		now:        time.Now,
		hooks:      hooks,
		tenants:    make(map[uint64]*tstate),
		users:      make(map[uint32]*ustate),
	}
	s.started = s.now()
	return s
}

// enqueue checks a request against the tenant's budgets and queues it,
// dispatching at once if it can run. The caller waits on w.ready.
func (s *scheduler) enqueue(ten Tenant, prompt, maxTokens int64) (*waiter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	now := s.now()
	t := s.tenant(ten, now)
	w := &waiter{t: t, prompt: prompt, need: prompt + maxTokens, enq: now, ready: make(chan error, 1)}
	if w.need > s.ctxTokens {
		return nil, fmt.Errorf("%w: prompt (~%d tokens) + max_tokens (%d) exceeds the backend's context pool of %d tokens",
			ErrBadRequest, prompt, maxTokens, s.ctxTokens)
	}
	if err := s.neverFits(t, w); err != nil {
		return nil, err
	}
	if s.reject && t.queue.len == 0 {
		if why := s.fitsNow(t, w); why != "" {
			return nil, s.budgetErr(t, w, why)
		}
	}
	if s.queued >= s.maxQueue {
		return nil, fmt.Errorf("%w: %d requests queued", ErrBusy, s.queued)
	}
	if t.queue.len >= s.maxQueueT {
		return nil, fmt.Errorf("%w: agent %d has %d requests queued", ErrBusy, t.aid, t.queue.len)
	}
	if t.queue.len == 0 {
		s.lift(t)
	}
	s.seq++
	w.seq = s.seq
	t.queue.push(w)
	s.fifo.push(w)
	s.queued++
	s.pump(now)
	return w, nil
}

// tenant finds or creates the tenant's state and refreshes what Identify
// said about it (limits and weight may change between requests).
func (s *scheduler) tenant(ten Tenant, now time.Time) *tstate {
	t := s.tenants[ten.AID]
	if t == nil {
		t = &tstate{aid: ten.AID, base: ten.TokensUsed}
		s.tenants[ten.AID] = t
		if s.onNew != nil {
			s.onNew(t)
		}
	}
	w := ten.Weight
	if w <= 0 {
		w = 100
	}
	t.weight = float64(w) / 100
	t.limit = ten.TokenLimit
	t.kvBytes = ten.KVBytes
	t.usedSeen = ten.TokensUsed
	t.lastSeen = now
	t.forgotten = false
	t.user = s.user(ten)
	return t
}

// lift raises a newly backlogged tenant's counter to the smallest counter
// among the backlogged tenants, or to the last-served one's when none is.
func (s *scheduler) lift(t *tstate) {
	floor, any := math.Inf(1), false
	for _, u := range s.tenants {
		if u != t && u.queue.len > 0 && u.counter < floor {
			floor, any = u.counter, true
		}
	}
	if !any {
		floor = s.lastServed
	}
	t.counter = max(t.counter, floor)
}

// neverFits says whether w can never run under the tenant's budgets, even
// once every reservation in flight is refunded.
func (s *scheduler) neverFits(t *tstate, w *waiter) error {
	if u := t.user; u != nil && w.need > u.limit-u.used() {
		return u.err(t, w, false)
	}
	if t.limit > 0 && w.need > t.limit-t.used() {
		return s.budgetErr(t, w, "")
	}
	if t.kvBytes > 0 && w.need*s.kvPerToken > t.kvBytes {
		return fmt.Errorf("%w: KV budget: prompt (~%d tokens) + max_tokens (%d) needs %d bytes of KV cache, the agent's HBM budget is %d bytes",
			ErrOverBudget, w.prompt, w.need-w.prompt, w.need*s.kvPerToken, t.kvBytes)
	}
	return nil
}

// fitsNow returns "" when w fits the tenant's budgets now, or what it
// waits for ("tokens" or "kv").
func (s *scheduler) fitsNow(t *tstate, w *waiter) string {
	if t.limit > 0 && w.need > t.limit-t.used()-t.reserved {
		return "tokens"
	}
	if t.kvBytes > 0 && (t.ctx+w.need)*s.kvPerToken > t.kvBytes {
		return "kv"
	}
	if u := t.user; u != nil && w.need > u.limit-u.used()-u.reserved {
		return "user"
	}
	return ""
}

func (s *scheduler) budgetErr(t *tstate, w *waiter, why string) error {
	switch why {
	case "user":
		return t.user.err(t, w, true)
	case "kv":
		return fmt.Errorf("%w: KV budget: %d context tokens in flight + %d requested exceed the agent's HBM budget of %d bytes",
			ErrOverBudget, t.ctx, w.need, t.kvBytes)
	case "tokens":
		return fmt.Errorf("%w: token budget: request needs %d tokens (prompt ~%d + max_tokens %d); %d of %d remain after %d reserved in flight",
			ErrOverBudget, w.need, w.prompt, w.need-w.prompt, max(0, t.limit-t.used()-t.reserved), t.limit, t.reserved)
	}
	return fmt.Errorf("%w: token budget: request needs %d tokens (prompt ~%d + max_tokens %d) but only %d of the agent's %d remain",
		ErrOverBudget, w.need, w.prompt, w.need-w.prompt, max(0, t.limit-t.used()), t.limit)
}

// pump dispatches while a slot and enough context pool are free, then
// refreshes which tenants wait on their budget.
func (s *scheduler) pump(now time.Time) {
	s.sweepBudgets()
	for s.inflight < s.slots {
		w := s.pick(now)
		if w == nil {
			break
		}
		// Head of line: a request too large for the free context pool
		// waits for it rather than being overtaken forever.
		if s.ctxUsed+w.need > s.ctxTokens {
			break
		}
		s.admit(w, now)
		s.sweep(w.t) // its next request may not fit what is left
	}
}

// sweepBudgets fails queue heads that can never fit, fails (reject policy)
// or marks (wait policy) heads that do not fit now, and reports changes of
// the blocked state to Hooks.Blocked.
func (s *scheduler) sweepBudgets() {
	for _, t := range s.tenants {
		s.sweep(t)
	}
}

func (s *scheduler) sweep(t *tstate) {
	why := ""
	for t.queue.len > 0 {
		w := t.queue.head
		if err := s.neverFits(t, w); err != nil {
			s.fail(w, err)
			continue
		}
		if why = s.fitsNow(t, w); why != "" && s.reject {
			s.fail(w, s.budgetErr(t, w, why))
			why = ""
			continue
		}
		break
	}
	s.setBlocked(t, why)
}

func (s *scheduler) setBlocked(t *tstate, why string) {
	blocked := why != ""
	if blocked == t.blocked {
		t.reason = why
		return
	}
	t.blocked, t.reason = blocked, why
	reason := ""
	if blocked {
		reason = "waiting for its " + map[string]string{"tokens": "token budget", "kv": "KV (HBM) budget", "user": "user's token budget"}[why]
	}
	s.hooks.blocked(t.aid, blocked, reason)
}

// pick returns the next waiter to dispatch, or nil.
func (s *scheduler) pick(now time.Time) *waiter {
	if s.policy == PolicyFIFO {
		for w := s.fifo.head; w != nil; w = w.byArrival.next {
			if !w.t.blocked && w.t.queue.head == w {
				return w
			}
		}
		return nil
	}
	var activeW float64
	active, top, second := 0, 0, 0 // the two largest in-flight counts
	if s.headroom >= 0 {
		for _, u := range s.tenants {
			if s.active(u, now) {
				activeW += u.weight
				active++
			}
			if u.inflight > top {
				top, second = u.inflight, top
			} else if u.inflight > second {
				second = u.inflight
			}
		}
	}
	var best *tstate
	for _, t := range s.tenants {
		if t.queue.len == 0 || t.blocked || !s.headroomAllows(t, now, active, activeW, top, second) {
			continue
		}
		if best == nil || t.counter < best.counter ||
			(t.counter == best.counter && t.queue.head.seq < best.queue.head.seq) {
			best = t
		}
	}
	if best == nil {
		return nil
	}
	return best.queue.head
}

func (s *scheduler) active(u *tstate, now time.Time) bool {
	return u.queue.len > 0 || u.inflight > 0 || now.Sub(u.lastSeen) < s.window
}

// headroomAllows applies the in-flight cap: while another tenant is
// active, the last Headroom free slots are kept back from a tenant that
// already holds its weighted fair share of slots (among active tenants) and
// holds the most slots of all. Plain VTC orders the queue but reserves no
// capacity, so a flooder fills every slot with long requests and a light
// tenant arriving next waits for one of them to finish; with the rule a
// light tenant finds a slot free at once unless its own burst exceeds the
// headroom. A light tenant bursting past its share is not held back (it is
// not the largest holder), and a lone tenant may use every slot. The cost
// is up to Headroom slots idle while light tenants are quiet but active.
func (s *scheduler) headroomAllows(t *tstate, now time.Time, active int, activeW float64, top, second int) bool {
	if s.headroom < 0 || s.slots-s.inflight > s.headroom {
		return true
	}
	if active <= 1 {
		// Alone, it may use every slot; but not in the first window after
		// start, when the others may not have spoken yet (a flooder that
		// fills every slot with long requests at start would hold them
		// against the first light requests).
		return now.Sub(s.started) >= s.window
	}
	share := int(math.Ceil(float64(s.slots) * t.weight / activeW))
	if t.inflight < share {
		return true
	}
	maxOther := top
	if t.inflight == top {
		maxOther = second
	}
	return t.inflight < maxOther
}

func (s *scheduler) admit(w *waiter, now time.Time) {
	t := w.t
	t.queue.remove(w)
	s.fifo.remove(w)
	s.queued--
	s.inflight++
	s.ctxUsed += w.need
	t.inflight++
	t.ctx += w.need
	t.reserved += w.need
	if w.user = t.user; w.user != nil {
		w.user.reserved += w.need
	}
	t.counter += float64(w.prompt) / t.weight
	if t.queue.len == 0 {
		s.lastServed = t.counter
	}
	w.state = wAdmitted
	w.admitted = now
	w.ready <- nil
}

// fail refuses a queued waiter.
func (s *scheduler) fail(w *waiter, err error) {
	w.t.queue.remove(w)
	s.fifo.remove(w)
	s.queued--
	w.state = wDone
	w.ready <- err
}

// wait blocks until w is admitted or refused, or ctx ends (then the
// request leaves the queue and holds nothing).
func (s *scheduler) wait(ctx context.Context, w *waiter) error {
	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch w.state {
	case wQueued:
		w.t.queue.remove(w)
		s.fifo.remove(w)
		s.queued--
		w.state = wDone
		s.pump(s.now())
		s.maybeForget(w.t)
	case wAdmitted:
		// Admitted as the client left: give everything back.
		<-w.ready
		s.releaseLocked(w, 0, 0)
	default:
		<-w.ready // refused meanwhile
	}
	return ctx.Err()
}

// charge adds streamed output tokens to the tenant's counter.
func (s *scheduler) charge(w *waiter, tokens int64) {
	s.mu.Lock()
	w.t.counter += float64(tokens) / w.t.weight
	w.charged += tokens
	s.mu.Unlock()
}

// release settles an admitted request with its real usage and refunds the
// rest of its reservation.
func (s *scheduler) release(w *waiter, in, out int64) {
	s.mu.Lock()
	s.releaseLocked(w, in, out)
	s.mu.Unlock()
}

func (s *scheduler) releaseLocked(w *waiter, in, out int64) {
	if w.state != wAdmitted {
		return
	}
	w.state = wDone
	t := w.t
	s.inflight--
	s.ctxUsed -= w.need
	t.inflight--
	t.ctx -= w.need
	t.reserved -= w.need
	t.settled += in + out
	if u := w.user; u != nil {
		u.reserved -= w.need
		u.settled += in + out
	}
	t.tokensIn += in
	t.tokensOut += out
	// Reconcile the counter with the real usage: the prompt was charged as
	// an estimate and output as chunks arrived.
	t.counter += float64(in-w.prompt+out-w.charged) / t.weight
	t.metrics.add(in, out)
	if in+out > 0 {
		s.hooks.spent(t.aid, in+out)
	}
	s.pump(s.now())
	s.maybeForget(t)
}

func (s *scheduler) forget(aid uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[aid]; t != nil {
		t.forgotten = true
		s.maybeForget(t)
	}
}

func (s *scheduler) maybeForget(t *tstate) {
	if t.forgotten && t.queue.len == 0 && t.inflight == 0 {
		delete(s.tenants, t.aid)
		if t.blocked {
			s.setBlocked(t, "")
		}
		t.metrics.drop()
	}
}

// close refuses every queued request.
func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for s.fifo.head != nil {
		s.fail(s.fifo.head, ErrClosed)
	}
	for _, t := range s.tenants {
		s.setBlocked(t, "")
	}
}

// waitList is an intrusive doubly linked list of waiters. A waiter is on
// two at once, its tenant's queue and the global arrival list, through two
// link fields; L picks which one a list uses.
type waitList[L linkOf] struct {
	head, tail *waiter
	len        int
}

type link struct{ prev, next *waiter }

type linkOf interface{ of(*waiter) *link }

type tenantLinks struct{}

func (tenantLinks) of(w *waiter) *link { return &w.byTenant }

type arrivalLinks struct{}

func (arrivalLinks) of(w *waiter) *link { return &w.byArrival }

func (l *waitList[L]) push(w *waiter) {
	var sel L
	k := sel.of(w)
	k.prev, k.next = l.tail, nil
	if l.tail != nil {
		sel.of(l.tail).next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.len++
}

func (l *waitList[L]) remove(w *waiter) {
	var sel L
	k := sel.of(w)
	if k.prev != nil {
		sel.of(k.prev).next = k.next
	} else {
		l.head = k.next
	}
	if k.next != nil {
		sel.of(k.next).prev = k.prev
	} else {
		l.tail = k.prev
	}
	k.prev, k.next = nil, nil
	l.len--
}

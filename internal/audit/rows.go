package audit

// CapDeny is the row of a capability the kernel or the supervisor refused:
// type "cap.deny", result deny, with the errno the agent saw.
func CapDeny(aid uint64, cap, object string, errno, pid int, kseq uint64, detail map[string]string) Record {
	return Record{AID: aid, Type: "cap.deny", Cap: cap, Object: object, Result: ResultDeny,
		Errno: errno, PID: pid, KSeq: kseq, Detail: detail}
}

// CapUse is the row of an allowed use the audit policy wants on record.
func CapUse(aid uint64, cap, object string, pid int, kseq uint64, detail map[string]string) Record {
	return Record{AID: aid, Type: "cap.use", Cap: cap, Object: object, Result: ResultAllow,
		PID: pid, KSeq: kseq, Detail: detail}
}

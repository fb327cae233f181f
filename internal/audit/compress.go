package audit

// compressor compresses sealed segments in the background (Options.
// CompressSealed): once at Open, for segments sealed before, and after
// every rotation. The segment being appended to is never touched; readers
// holding the old plain segInfo find the compressed copy through the
// manifest (openSegment).
func (c *Chain) compressor() {
	defer close(c.compDone)
	for range c.compKick {
		c.compressNow()
	}
}

// compressNow compresses what is sealed and still plain, and tells the
// chain's segment list.
func (c *Chain) compressNow() {
	done, err := CompressSealed(c.dir)
	c.mu.Lock()
	for _, a := range done {
		for i := range c.segs {
			if c.segs[i].first == a.First && i < len(c.segs)-1 {
				c.segs[i].arch, c.segs[i].size = &a, a.RawBytes
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.compressFailed(err)
	}
}

func (c *Chain) compressFailed(err error) {
	if c.opts.OnCompressError != nil {
		c.opts.OnCompressError(err)
	}
}

// kickCompressor asks for a compression pass without waiting.
func (c *Chain) kickCompressor() {
	if c.compKick == nil {
		return
	}
	select {
	case c.compKick <- struct{}{}:
	default: // one is pending: it will see this segment too
	}
}

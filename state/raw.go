package state

// RawGet returns the value of the row whose window key (see
// AppendWindowKey) is key; the rules of KV.Get apply. Queries use it to
// read a window store as the rows its changelog carries.
func (w *WindowStore) RawGet(key []byte) ([]byte, bool, error) {
	v, ok, err := w.get(nsData, key)
	if err != nil {
		return nil, false, w.fail("get", err)
	}
	return v, ok, nil
}

// RawRange calls fn for the rows whose window keys lie in [from, to) (nil:
// unbounded), in ascending order; the rules of KV.Range apply.
func (w *WindowStore) RawRange(from, to []byte, fn func(key, value []byte) error) error {
	return w.rangeData(from, to, fn)
}

package rows

// MergePatch applies an RFC 7386 JSON merge patch to target and returns the
// result; neither argument is modified. A null in the patch removes the
// field, an object merges into the field's object (replacing a non-object),
// anything else replaces the field. Arrays are replaced whole, as the RFC
// says.
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	out := make(map[string]any, len(t)+len(p))
	if ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}

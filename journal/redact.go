package journal

import "strings"

// A process's output may go to a logging program named by a URI
// (binary:///usr/bin/logger?key=value), and the query is how a client
// passes it arguments: an API token, a password. The journal outlives the
// container and is read by people who need not see them: it keeps a URI's
// query keys, which say what was passed, and drops their values.

// uriSchemes are the URIs containerd names output with.
var uriSchemes = []string{"binary://", "file://"}

// withoutQueryValues rewrites every binary:// or file:// URI in s, as a
// path or quoted in a message, to keep its query's keys alone:
// binary:///usr/bin/logger?token=s3cret&level=debug becomes
// binary:///usr/bin/logger?token&level.
func withoutQueryValues(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var out strings.Builder
	for {
		start := firstURI(s)
		if start < 0 {
			out.WriteString(s)
			return out.String()
		}
		end := start + strings.IndexFunc(s[start:], endsURI)
		if end < start {
			end = len(s)
		}
		out.WriteString(s[:start])
		out.WriteString(queryKeysOnly(s[start:end]))
		s = s[end:]
	}
}

// firstURI is where the first URI of uriSchemes starts in s, or -1.
func firstURI(s string) int {
	first := -1
	for _, scheme := range uriSchemes {
		if i := strings.Index(s, scheme); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

// endsURI: a URI in a message ends at a space or a quote.
func endsURI(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '"' || r == '\'' || r == '`'
}

func queryKeysOnly(uri string) string {
	base, query, found := strings.Cut(uri, "?")
	if !found {
		return uri
	}
	query, _, _ = strings.Cut(query, "#")
	var keys []string
	for _, pair := range strings.Split(query, "&") {
		if key, _, _ := strings.Cut(pair, "="); key != "" {
			keys = append(keys, key)
		}
	}
	return base + "?" + strings.Join(keys, "&")
}

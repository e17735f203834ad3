// Package match owns the string matchers behind Falco's condition operators:
// glob/iglob (POSIX fnmatch in the C locale), pmatch (path-prefix sets),
// regex (RE2 POSIX syntax, fully anchored) and icontains (strcasestr).
//
// Each matcher is compiled once from the rule's literal and then evaluated
// against event values without allocating, because these run per event on
// Falco's hot path. Semantics follow libsinsp rather than Go's standard
// library: path.Match, for instance, stops '*' at '/', while fnmatch with no
// flags does not.
package match

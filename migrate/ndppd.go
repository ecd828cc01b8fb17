package migrate

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Ndppd is a parsed ndppd.conf (ndppd 0.2.x, what distributions ship).
type Ndppd struct {
	Proxies []Proxy
}

// Proxy is one `proxy IFACE { ... }` block: ndppd listens for neighbour
// solicitations on Iface and answers for its rules.
type Proxy struct {
	Iface       string
	Router      bool // router yes (the default): advertisements carry the router flag
	Promiscuous bool
	Rules       []Rule
	Line        int
}

// Rule methods of ndppd.
const (
	MethodStatic = "static" // answer for every address of the prefix
	MethodAuto   = "auto"   // answer when the kernel routes the address elsewhere
	MethodIface  = "iface"  // answer when the address answers on Iface
)

// Rule is one `rule PREFIX { ... }` of a proxy.
type Rule struct {
	Prefix netip.Prefix
	Method string // MethodStatic, MethodAuto or MethodIface
	Iface  string // for MethodIface
	Line   int
}

// ndppd's options, for the messages.
var (
	globalOptions = []string{"route-ttl", "address-ttl", "proxy"}
	proxyOptions  = []string{"router", "timeout", "ttl", "autowire", "keepalive", "retries", "promiscuous", "rule"}
	ruleOptions   = []string{"static", "auto", "iface", "autovia"}
)

type token struct {
	s    string
	line int
}

func tokenize(text string) []token {
	var out []token
	for i, l := range strings.Split(text, "\n") {
		if c := strings.IndexByte(l, '#'); c >= 0 {
			l = l[:c]
		}
		l = strings.NewReplacer("{", " { ", "}", " } ").Replace(l)
		for _, w := range strings.Fields(l) {
			out = append(out, token{w, i + 1})
		}
	}
	return out
}

// ParseNdppd parses the text of an ndppd.conf; name is used in messages.
// A rule with neither static, auto nor iface is static, as in ndppd 0.2.5.
func ParseNdppd(name, text string) (Ndppd, error) {
	p := &confParser{name: name, toks: tokenize(text)}
	var n Ndppd
	for !p.done() {
		t := p.next()
		var err error
		switch t.s {
		case "route-ttl", "address-ttl":
			_, err = p.number(t)
		case "proxy":
			var px Proxy
			if px, err = p.proxy(t); err == nil {
				n.Proxies = append(n.Proxies, px)
			}
		default:
			err = p.errf(t, "unknown option %q: accepted at the top are %s", t.s, strings.Join(globalOptions, ", "))
		}
		if err != nil {
			return n, err
		}
	}
	if len(n.Proxies) == 0 {
		return n, fmt.Errorf("%s: no proxy block: nothing to translate", name)
	}
	return n, nil
}

type confParser struct {
	name string
	toks []token
	i    int
}

func (p *confParser) done() bool { return p.i >= len(p.toks) }

func (p *confParser) next() token {
	if p.done() {
		line := 0
		if len(p.toks) > 0 {
			line = p.toks[len(p.toks)-1].line
		}
		return token{"", line}
	}
	t := p.toks[p.i]
	p.i++
	return t
}

func (p *confParser) peek() string {
	if p.done() {
		return ""
	}
	return p.toks[p.i].s
}

func (p *confParser) errf(t token, format string, args ...any) error {
	return fmt.Errorf("%s line %d: %s", p.name, t.line, fmt.Sprintf(format, args...))
}

func (p *confParser) value(opt token) (token, error) {
	v := p.next()
	if v.s == "" || v.s == "{" || v.s == "}" {
		return v, p.errf(opt, "%s needs a value", opt.s)
	}
	return v, nil
}

func (p *confParser) number(opt token) (int, error) {
	v, err := p.value(opt)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v.s)
	if err != nil || n < 0 {
		return 0, p.errf(v, "%s %q: accepted is a number", opt.s, v.s)
	}
	return n, nil
}

func (p *confParser) yesNo(opt token) (bool, error) {
	v, err := p.value(opt)
	if err != nil {
		return false, err
	}
	switch v.s {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, p.errf(v, "%s %q: accepted are yes and no", opt.s, v.s)
}

func (p *confParser) open(opt token) error {
	if t := p.next(); t.s != "{" {
		return p.errf(t, "%s: want {, found %q", opt.s, t.s)
	}
	return nil
}

func (p *confParser) proxy(kw token) (Proxy, error) {
	iface, err := p.value(kw)
	if err != nil {
		return Proxy{}, err
	}
	px := Proxy{Iface: iface.s, Router: true, Line: kw.line}
	if err := p.open(kw); err != nil {
		return px, err
	}
	for {
		t := p.next()
		switch t.s {
		case "}":
			return px, nil
		case "":
			return px, p.errf(kw, "proxy %s is not closed with }", px.Iface)
		case "router":
			px.Router, err = p.yesNo(t)
		case "promiscuous":
			px.Promiscuous, err = p.yesNo(t)
		case "autowire", "keepalive":
			_, err = p.yesNo(t)
		case "timeout", "ttl", "retries":
			_, err = p.number(t)
		case "rule":
			var r Rule
			if r, err = p.rule(t); err == nil {
				px.Rules = append(px.Rules, r)
			}
		default:
			err = p.errf(t, "unknown option %q in proxy %s: accepted are %s", t.s, px.Iface, strings.Join(proxyOptions, ", "))
		}
		if err != nil {
			return px, err
		}
	}
}

func (p *confParser) rule(kw token) (Rule, error) {
	v, err := p.value(kw)
	if err != nil {
		return Rule{}, err
	}
	r := Rule{Line: kw.line}
	s := v.s
	if !strings.Contains(s, "/") {
		s += "/128"
	}
	if r.Prefix, err = netip.ParsePrefix(s); err != nil || !r.Prefix.Addr().Is6() || r.Prefix.Addr().Is4In6() {
		return r, p.errf(v, "rule %q: accepted is an IPv6 prefix such as 2001:db8:1234:a1:1::/112", v.s)
	}
	if p.peek() != "{" { // a rule without a block is static
		r.Method = MethodStatic
		return r, nil
	}
	p.next()
	for {
		t := p.next()
		switch t.s {
		case "}":
			if r.Method == "" {
				r.Method = MethodStatic
			}
			return r, nil
		case "":
			return r, p.errf(kw, "rule %s is not closed with }", v.s)
		case "static", "auto":
			if r.Method != "" && r.Method != MethodIface {
				return r, p.errf(t, "rule %s has both %s and %s: accepted is one of static, auto, iface", v.s, r.Method, t.s)
			}
			if r.Method == "" { // iface takes precedence, as in ndppd 0.2.5
				r.Method = t.s
			}
		case "iface":
			iv, err := p.value(t)
			if err != nil {
				return r, err
			}
			r.Method, r.Iface = MethodIface, iv.s
		case "autovia":
			if _, err := p.yesNo(t); err != nil {
				return r, err
			}
		default:
			return r, p.errf(t, "unknown option %q in rule %s: accepted are %s", t.s, v.s, strings.Join(ruleOptions, ", "))
		}
	}
}

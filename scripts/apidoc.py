#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""apidoc.py - the reference of libvmce's public API, from the comments of include/vmce/*.h.

    apidoc.py check INCLUDE_DIR
        List every public function, type, enumerator and constant without documentation;
        exit 1 when there is one.
    apidoc.py man INCLUDE_DIR OUTDIR [VERSION]
        Write section-3 man pages into OUTDIR: one per function (vmce_rdmsr.3), one per header
        (vmce.h.3, vmce_policy.h.3, ...: the header's overview, its types and constants), and
        a link page for every type (vmce_profile.3 -> the header's page).

What counts as documented (the convention of these headers):
  - a function: a comment ending on the line just above its declaration, or a comment after
    it on its last line; a comment above a run of declarations (no blank line) documents the
    ones of that run it names, e.g. "vmce_vcpu_set_started()/vmce_vcpu_started()";
  - a struct, enum or typedef: a comment just above it;
  - an enumerator or a member-less #define: a comment after it on its line, or a comment
    just above a run of such lines (no blank line in between) that it heads.
"""
import os
import re
import sys

HEADER_ORDER = ["vmce.h", "policy.h", "migrate.h", "kvm.h"]


class Item:
    def __init__(self, kind, name, header, line, code, doc):
        self.kind = kind  # function, struct, enum, typedef, enumerator, macro
        self.name = name
        self.header = header
        self.line = line
        self.code = code  # the declaration's text
        self.doc = doc  # comment text ("" when undocumented)


def strip_comment(text):
    """The words of a /* ... */ comment, one string per line, without the markers."""
    lines = text.split("\n")
    out = []
    for ln in lines:
        ln = ln.rstrip()
        ln = re.sub(r"^\s*/\*+\s?", "", ln)
        ln = re.sub(r"\s*\*+/\s*$", "", ln)
        ln = re.sub(r"^\s*\* ?", "", ln)
        out.append(ln)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def parse_header(path):
    name = os.path.basename(path)
    with open(path) as f:
        src = f.read()
    lines = src.split("\n")
    items = []
    overview = ""
    # Comments: (first line, last line, text), 0-based lines.
    comments = []
    for m in re.finditer(r"/\*.*?\*/", src, re.S):
        a = src.count("\n", 0, m.start())
        b = src.count("\n", 0, m.end())
        comments.append((a, b, m.group(0), m.start()))
    # The file's overview: the first comment after the SPDX line.
    for a, b, text, _ in comments:
        if "SPDX-License-Identifier" in text:
            continue
        overview = strip_comment(text)
        break

    def comment_ending_at(line_no):
        for a, b, text, _ in comments:
            if b == line_no:
                # Only a comment that stands alone on its lines (not a trailing one).
                if lines[a].strip().startswith("/*"):
                    return strip_comment(text)
        return None

    def trailing_comment(line_no):
        ln = lines[line_no]
        m = re.search(r"[;,{)\w]\s*(/\*.*?\*/)\s*$", ln)
        if m and not ln.strip().startswith("/*"):
            return strip_comment(m.group(1))
        return None

    def doc_above(line_no, names_needed=None):
        """Comment just above line_no, or above a run of declarations that names it."""
        c = comment_ending_at(line_no - 1)
        if c is not None:
            return c
        # Walk up through a run of declarations (no blank line, no comment).
        i = line_no - 1
        while i >= 0 and lines[i].strip() and not lines[i].strip().endswith("*/"):
            i -= 1
        if i >= 0 and lines[i].strip().endswith("*/"):
            c = comment_ending_at(i)
            if c is not None and names_needed:
                if re.search(r"\b%s\b" % re.escape(names_needed), c):
                    return c
        return None

    def group_doc(line_no):
        """Comment heading the run of lines (no blank line) that contains line_no."""
        i = line_no - 1
        while i >= 0 and lines[i].strip() and not lines[i].strip().startswith("/*") and \
                not lines[i].strip().endswith("*/"):
            i -= 1
        if i >= 0 and lines[i].strip().endswith("*/"):
            return comment_ending_at(i)
        return None

    # Functions: VMCE_API declarations (possibly over several lines).
    for m in re.finditer(r"^VMCE_API\b[^;]*;", src, re.M | re.S):
        decl = m.group(0)
        fn = re.search(r"(\w+)\s*\(", decl)
        if not fn:
            continue
        start = src.count("\n", 0, m.start())
        end = src.count("\n", 0, m.end())
        doc = trailing_comment(end) or doc_above(start, fn.group(1)) or ""
        code = re.sub(r"^VMCE_API\s+", "", decl)
        code = re.sub(r"\s+", " ", code)
        items.append(Item("function", fn.group(1), name, start, code, doc))

    # Types.
    for i, ln in enumerate(lines):
        m = re.match(r"^(struct|enum)\s+(\w+)\s*(\{|;)", ln)
        if m:
            kind, tname, what = m.groups()
            if what == "{":
                end = i
                while not lines[end].startswith("}"):
                    end += 1
                code = "\n".join(lines[i:end + 1])
            else:
                end = i
                code = ln.split("/*")[0].strip()
            doc = comment_ending_at(i - 1) or trailing_comment(i) or ""
            if not doc and what == ";":
                doc = group_doc(i) or ""
            items.append(Item(kind if what == "{" else "opaque", tname, name, i, code, doc))
            if kind == "enum" and what == "{":
                for j in range(i + 1, end):
                    e = re.match(r"^\s+(VMCE_\w+)\s*(=|,)", lines[j])
                    if e:
                        edoc = trailing_comment(j) or ""
                        items.append(Item("enumerator", e.group(1), name, j,
                                          lines[j].split("/*")[0].strip(), edoc))
        m = re.match(r"^typedef\s+.*\(\*(\w+)\)|^typedef\s+.*\s(\w+)\s*;", ln)
        if m:
            tname = m.group(1) or m.group(2)
            doc = comment_ending_at(i - 1) or doc_above(i + 1, tname) or ""
            # A typedef is often documented by the function that takes it, just below.
            if not doc:
                k = i + 1
                while k < len(lines) and not lines[k].strip():
                    k += 1
                c = None
                for a, b, text, _ in comments:
                    if a == k:
                        c = strip_comment(text)
                if c and tname.replace("_fn", "") in c or (c and "Called for each" in c):
                    doc = c
            items.append(Item("typedef", tname, name, i, ln.strip(), doc))

    # Constants: #define NAME ... (not the include guard or the export macro).
    for i, ln in enumerate(lines):
        m = re.match(r"^#define\s+(\w+)(\([^)]*\))?\s*(.*)$", ln)
        if not m:
            continue
        mname = m.group(1)
        if mname in ("VMCE_API",) or re.match(r"^VMCE_\w+_H$", mname):
            continue
        if not m.group(3).strip():
            continue  # a guard-like flag
        doc = trailing_comment(i) or comment_ending_at(i - 1) or group_doc(i) or ""
        code = ln.split("/*")[0].rstrip()
        items.append(Item("macro", mname, name, i, code, doc))
    return overview, items


def load(include_dir):
    d = os.path.join(include_dir, "vmce")
    names = sorted(os.listdir(d), key=lambda n: (HEADER_ORDER.index(n)
                                                  if n in HEADER_ORDER else 99, n))
    headers = []
    for n in names:
        if n.endswith(".h"):
            overview, items = parse_header(os.path.join(d, n))
            headers.append((n, overview, items))
    return headers


def cmd_check(include_dir):
    headers = load(include_dir)
    missing = []
    counts = {}
    for n, overview, items in headers:
        if not overview:
            missing.append("%s: no overview comment at the top" % n)
        for it in items:
            counts[it.kind] = counts.get(it.kind, 0) + 1
            if not it.doc.strip():
                missing.append("include/vmce/%s:%d: %s %s has no documentation comment"
                               % (n, it.line + 1, it.kind, it.name))
    for m in missing:
        print("apidoc: undocumented: " + m, file=sys.stderr)
    summary = ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items()))
    if missing:
        print("apidoc: FAIL: %d undocumented public symbol(s) (of %s)" % (len(missing), summary),
              file=sys.stderr)
        return 1
    print("apidoc: every public symbol is documented (%s)" % summary)
    return 0


# ---- man pages -------------------------------------------------------------------------------


def esc(s):
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return s


def line_safe(s):
    s = esc(s)
    if s.startswith(".") or s.startswith("'"):
        s = "\\&" + s
    return s


def first_sentence(doc):
    text = " ".join(doc.split())
    m = re.match(r"(.+?[.:])(\s|$)", text)
    s = m.group(1) if m else text
    s = s.rstrip(".:")
    if len(s) > 110:
        s = s[:107].rsplit(" ", 1)[0] + "..."
    return s or "see the header"


def render_doc(doc):
    """Comment text as man paragraphs: indented or list lines are kept as they are."""
    out = []
    paras = re.split(r"\n\s*\n", doc)
    for p in paras:
        plines = p.split("\n")
        if not p.strip():
            continue
        literal = any(re.match(r"^(\s{2,}|\s*- |\s*\d\.\s|-{4,})", ln) for ln in plines)
        if literal:
            out.append(".PP")
            out.append(".nf")
            for ln in plines:
                out.append(line_safe(ln.rstrip()) if ln.strip() else ".sp")
            out.append(".fi")
        else:
            out.append(".PP")
            out.append(line_safe(" ".join(ln.strip() for ln in plines)))
    return out


def page_head(title, version, name, desc):
    return [
        '.\\" Generated by scripts/apidoc.py from the comments of include/vmce/*.h.',
        '.TH %s 3 "%s" "vmce %s" "vmce API reference"' % (esc(title.upper()), "2026", version),
        ".SH NAME",
        "%s \\- %s" % (esc(name), esc(desc)),
    ]


def code_block(code):
    out = [".PP", ".nf"]
    for ln in code.split("\n"):
        out.append(line_safe(ln.rstrip()) if ln.strip() else ".sp")
    out.append(".fi")
    return out


def hpage(h):
    return "vmce.h" if h == "vmce.h" else "vmce_" + h


def cmd_man(include_dir, outdir, version):
    headers = load(include_dir)
    os.makedirs(outdir, exist_ok=True)
    written = []

    def write(fname, lines):
        with open(os.path.join(outdir, fname), "w") as f:
            f.write("\n".join(lines) + "\n")
        written.append(fname)

    for h, overview, items in headers:
        page = hpage(h)
        funcs = [it for it in items if it.kind == "function"]
        for it in funcs:
            lines = page_head(it.name, version, it.name, first_sentence(it.doc))
            lines += [".SH SYNOPSIS", ".nf", ".B #include <vmce/%s>" % h, ".PP"]
            lines += [line_safe(it.code), ".fi", ".PP",
                      "Link with \\fI\\-lvmce\\fP (\\fBpkg\\-config \\-\\-libs vmce\\fP)."]
            lines += [".SH DESCRIPTION"] + render_doc(it.doc)
            lines += [".PP", "The thread-safety contract and error convention are in "
                      "\\fB%s\\fP(3)." % esc(hpage("vmce.h"))]
            lines += [".SH SEE ALSO", "\\fB%s\\fP(3)" % esc(page)]
            write(it.name + ".3", lines)

        lines = page_head(page, version, page,
                          "the %s part of the vmce API" % h.replace(".h", "")
                          if h != "vmce.h" else "the vmce API: profiles, the VM model, the MSR "
                          "path and delivery")
        lines += [".SH SYNOPSIS", ".nf", ".B #include <vmce/%s>" % h, ".fi", ".PP",
                  "Link with \\fI\\-lvmce\\fP (\\fBpkg\\-config \\-\\-cflags \\-\\-libs vmce\\fP)."]
        lines += [".SH DESCRIPTION"] + render_doc(overview)
        types = [it for it in items if it.kind in ("struct", "enum", "typedef", "opaque")]
        if types:
            lines += [".SH TYPES"]
            for it in types:
                lines += [".SS %s %s" % (it.kind if it.kind in ("struct", "enum") else
                                         ("struct" if it.kind == "opaque" else "typedef"),
                                         esc(it.name))]
                lines += render_doc(it.doc) + code_block(it.code)
        macros = [it for it in items if it.kind == "macro"]
        if macros:
            lines += [".SH CONSTANTS", ".nf"]
            for it in macros:
                c = re.sub(r"\s+", " ", it.code.replace("#define ", "", 1))
                lines.append(line_safe(c))
                lines.append(line_safe("        " + " ".join(it.doc.split())))
            lines += [".fi"]
        if funcs:
            lines += [".SH FUNCTIONS", ".nf"]
            for it in funcs:
                lines.append("\\fB%s\\fP(3) \\- %s" % (esc(it.name), esc(first_sentence(it.doc))))
            lines += [".fi"]
        others = [hpage(x[0]) for x in headers if x[0] != h]
        lines += [".SH SEE ALSO", ", ".join("\\fB%s\\fP(3)" % esc(o) for o in others) +
                  ", \\fBvmcectl\\fP(1), \\fBvmce\\-vm\\fP(1)"]
        write(page + ".3", lines)
        for it in types:
            # A function of the same name (vmce_kvm_mode) keeps its own page.
            if it.name + ".3" not in written:
                write(it.name + ".3", [".so man3/%s.3" % page])
    print("apidoc: wrote %d man pages into %s" % (len(written), outdir))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "check":
        return cmd_check(argv[2])
    if len(argv) >= 4 and argv[1] == "man":
        return cmd_man(argv[2], argv[3], argv[4] if len(argv) > 4 else "0")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

// Markdown parser: just enough CommonMark block structure to know where headings and
// paragraphs are. The text is kept as written (inline markup stays) because embeddings and
// keyword search cope with it, and offsets then point at the user's own file. What matters is
// the heading path: ATX ("## x") and setext ("x\n---") headings, with fenced code excluded so
// that a shell comment in a code block is never mistaken for a heading.
#include <cstring>

#include "ingest/document_builder.h"

namespace kb::ingest_internal {

namespace {

constexpr size_t kMaxIndent = 3;  // four spaces of indent make an indented code block

// Columns of leading indentation; a tab counts as reaching a code block's indent.
size_t Indent(std::string_view line) {
  size_t n = 0;
  for (char c : line) {
    if (c == ' ') {
      ++n;
    } else if (c == '\t') {
      return n + 4;
    } else {
      break;
    }
  }
  return n;
}

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (!IsSpace(c)) return false;
  }
  return true;
}

size_t CountRun(std::string_view s, char c) {
  size_t n = 0;
  while (n < s.size() && s[n] == c) ++n;
  return n;
}

// An opening code fence: three or more backticks or tildes; a backtick fence's info string
// may not contain a backtick (that would be inline code).
bool IsOpeningFence(std::string_view rest, char* fence_char, size_t* fence_len) {
  if (rest.empty() || (rest[0] != '`' && rest[0] != '~')) return false;
  size_t n = CountRun(rest, rest[0]);
  if (n < 3) return false;
  if (rest[0] == '`' && rest.find('`', n) != std::string_view::npos) return false;
  *fence_char = rest[0];
  *fence_len = n;
  return true;
}

bool IsClosingFence(std::string_view line, char fence_char, size_t fence_len) {
  if (Indent(line) > kMaxIndent) return false;
  std::string_view rest = line.substr(Indent(line));
  size_t n = CountRun(rest, fence_char);
  return n >= fence_len && IsBlank(rest.substr(n));
}

// "## Title ##" -> level 2, "Title". Level 0 if the line is not an ATX heading.
int AtxHeading(std::string_view rest, std::string_view* content) {
  size_t n = CountRun(rest, '#');
  if (n < 1 || n > 6) return 0;
  if (n < rest.size() && rest[n] != ' ' && rest[n] != '\t') return 0;
  std::string_view c = rest.substr(n);
  size_t e = c.size();
  while (e > 0 && IsSpace(c[e - 1])) --e;
  c = c.substr(0, e);
  // An optional closing sequence of #'s, only if separated by a space ("C#" keeps its #).
  size_t hashes = 0;
  while (hashes < c.size() && c[c.size() - 1 - hashes] == '#') ++hashes;
  if (hashes == c.size() || IsSpace(c[c.size() - 1 - hashes])) c = c.substr(0, c.size() - hashes);
  *content = c;
  return static_cast<int>(n);
}

// "===" -> 1, "---" -> 2, else 0.
int SetextLevel(std::string_view rest) {
  if (rest.empty() || (rest[0] != '=' && rest[0] != '-')) return 0;
  size_t n = CountRun(rest, rest[0]);
  if (!IsBlank(rest.substr(n))) return 0;
  return rest[0] == '=' ? 1 : 2;
}

}  // namespace

Result<ParsedDocument> ParseMarkdown(std::string_view bytes) {
  KB_ASSIGN_OR_RETURN(std::string normalized, NormalizeUtf8Text(bytes, "Markdown"));
  DocumentBuilder builder(std::move(normalized));
  std::string_view t = builder.text();
  std::string title;

  size_t para_start = std::string_view::npos;  // open paragraph, if any
  size_t para_end = 0;
  auto flush_paragraph = [&] {
    if (para_start == std::string_view::npos) return;
    builder.AddSourceBlock(para_start, para_end - para_start, false);
    para_start = std::string_view::npos;
  };
  char fence_char = 0;  // non-zero inside a fenced code block
  size_t fence_len = 0;
  size_t fence_start = 0;

  auto line_end_at = [&](size_t pos) {
    const void* nl = std::memchr(t.data() + pos, '\n', t.size() - pos);
    return nl ? static_cast<size_t>(static_cast<const char*>(nl) - t.data()) : t.size();
  };

  size_t pos = 0;
  // YAML front matter ("---" ... "---" at the very top) would otherwise end in a setext heading.
  if (t.substr(0, 4) == "---\n") {
    for (size_t p = 4; p < t.size();) {
      size_t e = line_end_at(p);
      std::string_view line = t.substr(p, e - p);
      if (line == "---" || line == "...") {
        builder.AddSourceBlock(0, e, false);
        pos = e + 1;
        break;
      }
      p = e + 1;
    }
  }

  for (; pos < t.size();) {
    size_t line_end = line_end_at(pos);
    std::string_view line = t.substr(pos, line_end - pos);
    size_t next = line_end + 1;

    if (fence_char != 0) {
      if (IsClosingFence(line, fence_char, fence_len)) {
        builder.AddSourceBlock(fence_start, line_end - fence_start, false);
        fence_char = 0;
      }
      pos = next;
      continue;
    }

    size_t indent = Indent(line);
    if (indent <= kMaxIndent) {
      std::string_view rest = line.substr(indent);
      if (IsOpeningFence(rest, &fence_char, &fence_len)) {
        flush_paragraph();
        fence_start = pos;
        pos = next;
        continue;
      }
      std::string_view content;
      if (int level = AtxHeading(rest, &content); level > 0) {
        flush_paragraph();
        bool named = builder.EnterHeading(level, content);
        builder.AddSourceBlock(pos, line.size(), named);
        if (named && level == 1 && title.empty()) title = builder.heading_path().back();
        pos = next;
        continue;
      }
      if (para_start != std::string_view::npos) {
        if (int level = SetextLevel(rest); level > 0) {
          bool named = builder.EnterHeading(level, t.substr(para_start, para_end - para_start));
          builder.AddSourceBlock(para_start, line_end - para_start, named);
          if (named && level == 1 && title.empty()) title = builder.heading_path().back();
          para_start = std::string_view::npos;
          pos = next;
          continue;
        }
      }
    }

    if (IsBlank(line)) {
      flush_paragraph();
    } else {
      if (para_start == std::string_view::npos) para_start = pos;
      para_end = line_end;
    }
    pos = next;
  }
  if (fence_char != 0) builder.AddSourceBlock(fence_start, t.size() - fence_start, false);
  flush_paragraph();
  return builder.Finish(std::move(title));
}

}  // namespace kb::ingest_internal

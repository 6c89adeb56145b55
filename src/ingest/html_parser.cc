// HTML parser: gumbo builds the tree (it accepts any byte soup, as browsers do); we walk it to
// recover readable text with its structure: block elements become paragraphs, h1-h6 build the
// heading path, and machinery that is not prose (scripts, styles, templates, SVG, the head
// apart from <title>) is dropped.
#include <gumbo.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <vector>

#include "common/text_util.h"
#include "ingest/document_builder.h"

namespace kb::ingest_internal {

namespace {

// Gumbo frees its tree node by node and recursively (deep trees exhaust the stack). Allocating
// the whole parse from an arena that is dropped at once means gumbo_destroy_output is never
// needed and is faster than malloc per node; the cost is that buffers gumbo outgrows are not
// reused, at most doubling its memory.
class GumboArena {
 public:
  static void* Allocate(void* self, size_t size) {
    return static_cast<GumboArena*>(self)->Take(size);
  }
  static void Deallocate(void*, void*) {}  // the arena is freed as a whole

 private:
  static constexpr size_t kChunkSize = 256 * 1024;
  static constexpr size_t kAlign = alignof(std::max_align_t);

  void* Take(size_t size) {
    size = (size + kAlign - 1) & ~(kAlign - 1);
    if (size > kChunkSize / 4) {  // big buffers get their own chunk, keeping the current one
      chunks_.emplace_back(new std::max_align_t[size / sizeof(std::max_align_t) + 1]);
      return chunks_.back().get();
    }
    if (current_base_ == nullptr || used_ + size > kChunkSize) {
      chunks_.emplace_back(new std::max_align_t[kChunkSize / sizeof(std::max_align_t)]);
      current_base_ = reinterpret_cast<char*>(chunks_.back().get());
      used_ = 0;
    }
    void* p = current_base_ + used_;
    used_ += size;
    return p;
  }

  std::vector<std::unique_ptr<std::max_align_t[]>> chunks_;
  char* current_base_ = nullptr;
  size_t used_ = 0;
};

// Gumbo's tree builder scans the stack of open elements for every tag, so its time grows with
// (tags x nesting depth): 10,000 nested <div>s take seconds, 200,000 take hours, and 100,000
// tags under 2,000 open elements take seconds too. Real pages nest a few dozen levels, so we
// refuse documents that nest very deep, or that put very many tags deep down.
constexpr size_t kMaxHtmlDepth = 1000;
constexpr size_t kShallowDepth = 64;            // depth that real pages stay within
constexpr size_t kMaxDeepTagWork = 20'000'000;  // sum over tags of depth beyond that

struct NestingEstimate {
  size_t max_depth = 0;
  size_t deep_work = 0;
};

bool EqualsNoCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  }
  return true;
}

bool NameIs(std::string_view name, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (name == n) return true;
  }
  return false;
}

// A cheap estimate of the nesting gumbo would build: start tags deepen, end tags return, and
// elements that are void or whose end tag is optional (<p>, <li>, <td>...) are not counted,
// since gumbo closes them implicitly. Raw-text elements are skipped whole.
NestingEstimate EstimateNesting(std::string_view html) {
  NestingEstimate est;
  size_t depth = 0;
  size_t i = 0;
  while ((i = html.find('<', i)) != std::string_view::npos) {
    ++i;
    if (i >= html.size()) break;
    if (html.compare(i, 3, "!--") == 0) {
      size_t end = html.find("-->", i + 3);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    bool closing = html[i] == '/';
    if (closing) ++i;
    size_t name_start = i;
    while (i < html.size() && (std::isalnum(static_cast<unsigned char>(html[i])) != 0)) ++i;
    if (i == name_start) continue;
    // Tag names that matter here are short; longer ones only count as depth.
    char name_buf[12];
    size_t name_len = std::min(i - name_start, sizeof(name_buf));
    for (size_t k = 0; k < name_len; ++k) {
      name_buf[k] =
          static_cast<char>(std::tolower(static_cast<unsigned char>(html[name_start + k])));
    }
    std::string_view name(name_buf, i - name_start <= sizeof(name_buf) ? name_len : 0);
    size_t gt = html.find('>', i);
    if (gt == std::string_view::npos) break;
    bool self_closing = html[gt - 1] == '/';
    i = gt + 1;
    if (depth > kShallowDepth) est.deep_work += depth - kShallowDepth;
    if (NameIs(name,
               {"area",    "base",  "br",    "col",    "embed", "hr",    "img",      "input",
                "link",    "meta",  "param", "source", "track", "wbr",   "keygen",   "basefont",
                "bgsound", "frame", "p",     "li",     "dt",    "dd",    "option",   "optgroup",
                "tr",      "td",    "th",    "thead",  "tbody", "tfoot", "colgroup", "caption",
                "rb",      "rt",    "rtc",   "rp",     "html",  "head",  "body"})) {
      continue;
    }
    if (closing) {
      if (depth > 0) --depth;
      continue;
    }
    if (self_closing) continue;
    if (NameIs(name, {"script", "style", "textarea", "title", "xmp", "plaintext"})) {
      size_t end = html.find("</", i);
      while (end != std::string_view::npos &&
             !EqualsNoCase(html.substr(end + 2, name.size()), name)) {
        end = html.find("</", end + 2);
      }
      if (end == std::string_view::npos) break;
      i = end;
      continue;
    }
    est.max_depth = std::max(est.max_depth, ++depth);
    if (est.max_depth > kMaxHtmlDepth || est.deep_work > kMaxDeepTagWork) break;  // verdict known
  }
  return est;
}

bool IsDropped(const GumboNode* node) {
  if (node->type == GUMBO_NODE_TEMPLATE) return true;
  if (node->type != GUMBO_NODE_ELEMENT) return false;
  if (node->v.element.tag_namespace != GUMBO_NAMESPACE_HTML) return true;  // svg, math
  switch (node->v.element.tag) {
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_SVG:
    case GUMBO_TAG_MATH:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_EMBED:
    case GUMBO_TAG_CANVAS:
    case GUMBO_TAG_SELECT:
    case GUMBO_TAG_HEAD:  // its <title> is read separately
    case GUMBO_TAG_TITLE:
      return true;
    default:
      return false;
  }
}

// Elements that start and end a paragraph of their own.
bool IsBlock(GumboTag tag) {
  switch (tag) {
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_CENTER:
    case GUMBO_TAG_DD:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_DIR:
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_DL:
    case GUMBO_TAG_DT:
    case GUMBO_TAG_FIELDSET:
    case GUMBO_TAG_FIGCAPTION:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_HGROUP:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_HTML:
    case GUMBO_TAG_LEGEND:
    case GUMBO_TAG_LI:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_MENU:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_P:
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_SUMMARY:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_TBODY:
    case GUMBO_TAG_TFOOT:
    case GUMBO_TAG_THEAD:
    case GUMBO_TAG_TR:
    case GUMBO_TAG_UL:
    case GUMBO_TAG_TEXTAREA:
      return true;
    default:
      return false;
  }
}

int HeadingLevel(GumboTag tag) {
  switch (tag) {
    case GUMBO_TAG_H1:
      return 1;
    case GUMBO_TAG_H2:
      return 2;
    case GUMBO_TAG_H3:
      return 3;
    case GUMBO_TAG_H4:
      return 4;
    case GUMBO_TAG_H5:
      return 5;
    case GUMBO_TAG_H6:
      return 6;
    default:
      return 0;
  }
}

bool IsTextNode(const GumboNode* node) {
  return node->type == GUMBO_NODE_TEXT || node->type == GUMBO_NODE_CDATA ||
         node->type == GUMBO_NODE_WHITESPACE;
}

// A text node's text as valid UTF-8. Gumbo repairs ill-formed input bytes, but a numeric
// character reference beyond Unicode (&#x888888888888;) comes out as ill-formed UTF-8.
std::string_view NodeText(const GumboNode* node, std::string* repaired) {
  std::string_view text = node->v.text.text;
  if (IsValidUtf8(text)) return text;
  *repaired = SanitizeUtf8(text);
  return *repaired;
}

const GumboVector* Children(const GumboNode* node) {
  if (node->type == GUMBO_NODE_ELEMENT || node->type == GUMBO_NODE_TEMPLATE) {
    return &node->v.element.children;
  }
  if (node->type == GUMBO_NODE_DOCUMENT) return &node->v.document.children;
  return nullptr;
}

// All text below `root` (dropped elements excepted unless `root` is one, as <title> is),
// iteratively so that depth cannot exhaust the stack. <br> and block children separate words.
std::string SubtreeText(const GumboNode* root) {
  std::string out;
  std::vector<const GumboNode*> stack{root};
  while (!stack.empty()) {
    const GumboNode* node = stack.back();
    stack.pop_back();
    if (IsTextNode(node)) {
      std::string repaired;
      out += NodeText(node, &repaired);
      continue;
    }
    if (node != root && IsDropped(node)) continue;
    if (node->type == GUMBO_NODE_ELEMENT &&
        (node->v.element.tag == GUMBO_TAG_BR || IsBlock(node->v.element.tag))) {
      out += ' ';
    }
    if (const GumboVector* kids = Children(node)) {
      for (unsigned i = kids->length; i > 0; --i) {
        stack.push_back(static_cast<const GumboNode*>(kids->data[i - 1]));
      }
    }
  }
  return out;
}

const GumboNode* FindTitle(const GumboNode* root) {
  std::vector<const GumboNode*> stack{root};
  while (!stack.empty()) {
    const GumboNode* node = stack.back();
    stack.pop_back();
    if (node->type == GUMBO_NODE_ELEMENT && node->v.element.tag == GUMBO_TAG_TITLE &&
        node->v.element.tag_namespace == GUMBO_NAMESPACE_HTML) {
      return node;
    }
    if (node->type == GUMBO_NODE_ELEMENT && node->v.element.tag_namespace != GUMBO_NAMESPACE_HTML) {
      continue;  // an SVG <title> names a drawing, not the page
    }
    if (const GumboVector* kids = Children(node)) {
      for (unsigned i = kids->length; i > 0; --i) {
        stack.push_back(static_cast<const GumboNode*>(kids->data[i - 1]));
      }
    }
  }
  return nullptr;
}

// Accumulates inline text into paragraphs, collapsing whitespace as a browser renders it.
class TextCollector {
 public:
  explicit TextCollector(DocumentBuilder* builder) : builder_(builder) {}

  void Text(std::string_view s, bool preformatted) {
    if (preformatted) {
      if (pending_space_) para_ += ' ';
      pending_space_ = false;
      para_.append(s);
      return;
    }
    for (char c : s) {
      if (IsSpace(c)) {
        pending_space_ = !para_.empty() && para_.back() != '\n';
        continue;
      }
      if (pending_space_) para_ += ' ';
      pending_space_ = false;
      para_ += c;
    }
  }
  void Space() { pending_space_ = !para_.empty() && para_.back() != '\n'; }
  void LineBreak() {
    pending_space_ = false;
    para_ += '\n';
  }
  void EndParagraph() {
    builder_->AppendBlock(para_, false);
    para_.clear();
    pending_space_ = false;
  }

 private:
  DocumentBuilder* builder_;
  std::string para_;
  bool pending_space_ = false;
};

}  // namespace

Result<ParsedDocument> ParseHtml(std::string_view bytes) {
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  // Gumbo expects UTF-8; repairing first keeps its output, and so our text, well-formed.
  std::string repaired;
  if (!IsValidUtf8(bytes)) {
    repaired = SanitizeUtf8(bytes);
    bytes = repaired;
  }

  NestingEstimate nesting = EstimateNesting(bytes);
  if (nesting.max_depth > kMaxHtmlDepth) {
    return Status::Unprocessable("HTML is nested about " + std::to_string(nesting.max_depth) +
                                 " elements deep; the limit is " + std::to_string(kMaxHtmlDepth));
  }
  if (nesting.deep_work > kMaxDeepTagWork) {
    return Status::Unprocessable("HTML has too many tags nested deep (more than " +
                                 std::to_string(kShallowDepth) + " levels) to parse");
  }

  GumboArena arena;
  GumboOptions options = kGumboDefaultOptions;
  options.allocator = &GumboArena::Allocate;
  options.deallocator = &GumboArena::Deallocate;
  options.userdata = &arena;
  options.max_errors = 0;  // we never read parse errors; don't spend memory on them
  GumboOutput* output = gumbo_parse_with_options(&options, bytes.data(), bytes.size());
  if (output == nullptr) return Status::Unprocessable("HTML could not be parsed");

  DocumentBuilder builder;
  TextCollector collector(&builder);
  std::string title;
  if (const GumboNode* t = FindTitle(output->document)) title = SubtreeText(t);
  std::string first_h1;

  struct Frame {
    const GumboNode* node;
    bool closing;  // revisited after its children, to end a block element
  };
  std::vector<Frame> stack{{output->document, false}};
  int pre_depth = 0;
  while (!stack.empty()) {
    Frame frame = stack.back();
    stack.pop_back();
    const GumboNode* node = frame.node;
    if (frame.closing) {
      GumboTag tag = node->v.element.tag;
      if (tag == GUMBO_TAG_PRE) --pre_depth;
      if (tag == GUMBO_TAG_TD || tag == GUMBO_TAG_TH) {
        collector.Space();
      } else {
        collector.EndParagraph();
      }
      continue;
    }
    if (IsTextNode(node)) {
      std::string repaired;
      collector.Text(NodeText(node, &repaired), pre_depth > 0);
      continue;
    }
    if (IsDropped(node)) continue;
    if (node->type == GUMBO_NODE_ELEMENT) {
      GumboTag tag = node->v.element.tag;
      if (int level = HeadingLevel(tag); level > 0) {
        collector.EndParagraph();
        std::string heading = SubtreeText(node);
        if (builder.EnterHeading(level, heading)) {
          builder.AppendBlock(builder.heading_path().back(), true);
          if (level == 1 && first_h1.empty()) first_h1 = builder.heading_path().back();
        }
        continue;
      }
      if (tag == GUMBO_TAG_BR) {
        collector.LineBreak();
        continue;
      }
      bool cell = tag == GUMBO_TAG_TD || tag == GUMBO_TAG_TH;
      if (IsBlock(tag) || cell) {
        if (cell) {
          collector.Space();
        } else {
          collector.EndParagraph();
        }
        if (tag == GUMBO_TAG_PRE) ++pre_depth;
        stack.push_back({node, true});
      }
    }
    if (const GumboVector* kids = Children(node)) {
      for (unsigned i = kids->length; i > 0; --i) {
        stack.push_back({static_cast<const GumboNode*>(kids->data[i - 1]), false});
      }
    }
  }
  collector.EndParagraph();
  // No gumbo_destroy_output: the arena owns every node (see GumboArena).
  title = CollapseWhitespace(title);
  return builder.Finish(title.empty() ? first_h1 : title);
}

}  // namespace kb::ingest_internal

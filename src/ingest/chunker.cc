// Chunker: turns a ParsedDocument into the pieces that get embedded and indexed.
//
// How it works, in one pass per heading section:
//  1. The blocks are normalised into ordered, non-overlapping spans that cover every
//     non-space byte of the text (parsers are trusted, but a hand-built document with gaps or
//     overlaps must still be covered), and runs of spans with one heading path form sections.
//  2. Within a section a window of `target_chars` bytes slides forward; each chunk ends at the
//     best boundary inside the window: a paragraph (block) start if that keeps the chunk at
//     least half full, else a sentence end or line break if at least a quarter full, else the
//     last whitespace, else a UTF-8 character boundary.
//  3. The next chunk starts `overlap_chars` before the previous end, moved forward to a word
//     start; with no word start in reach there is no overlap.
// Each boundary search looks only inside the current window and every chunk ends past the
// previous one, so the cost is O(text size * target / step): linear for sane options.
#include "ingest/chunker.h"

#include <algorithm>
#include <numeric>

#include "ingest/document_builder.h"

namespace kb {

namespace {

using ingest_internal::IsSpace;

constexpr size_t kMinTargetChars = 50;
constexpr size_t kMaxTargetChars = 100000;

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

struct Span {
  size_t begin = 0;
  size_t end = 0;
  const std::vector<std::string>* path = nullptr;
  bool heading = false;
};

std::vector<Span> NormalizeSpans(const ParsedDocument& doc) {
  static const std::vector<std::string> kTopLevel;
  const std::string& text = doc.text;
  const size_t size = text.size();

  std::vector<size_t> order(doc.blocks.size());
  std::iota(order.begin(), order.end(), 0);
  auto by_offset = [&](size_t a, size_t b) { return doc.blocks[a].offset < doc.blocks[b].offset; };
  if (!std::is_sorted(order.begin(), order.end(), by_offset)) {
    std::stable_sort(order.begin(), order.end(), by_offset);
  }

  std::vector<Span> spans;
  spans.reserve(doc.blocks.size() + 1);
  const std::vector<std::string>* last_path = &kTopLevel;
  size_t cursor = 0;
  auto add_gap = [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      if (!IsSpace(text[i])) {
        spans.push_back({b, e, last_path, false});
        return;
      }
    }
  };
  for (size_t index : order) {
    const TextBlock& block = doc.blocks[index];
    size_t b = std::min(block.offset, size);
    size_t e = b + std::min(block.length, size - b);
    // Offsets that split a character would make chunks ill-formed UTF-8.
    while (b > 0 && b < size && IsContinuationByte(text[b])) --b;
    while (e < size && IsContinuationByte(text[e])) ++e;
    b = std::max(b, cursor);
    if (b >= e) continue;
    add_gap(cursor, b);
    spans.push_back({b, e, &block.heading_path, block.is_heading});
    last_path = &block.heading_path;
    cursor = e;
  }
  add_gap(cursor, size);
  return spans;
}

std::string JoinPath(const std::vector<std::string>& path) {
  std::string out;
  for (const std::string& part : path) {
    if (!out.empty()) out += " > ";
    out += part;
  }
  return out;
}

class SectionChunker {
 public:
  SectionChunker(const std::string& text, size_t target, size_t overlap,
                 std::vector<TextChunk>* out)
      : text_(text), target_(target), overlap_(overlap), out_(out) {}

  // Chunks spans [first, last) (one section) labelled `path`.
  void Run(const Span* first, const Span* last, const std::string& path) {
    first_ = first;
    last_ = last;
    const size_t section_end = (last - 1)->end;
    size_t pos = SkipSpace(first->begin, section_end);
    size_t prev_cut = pos;
    while (pos < section_end) {
      size_t limit = pos + target_;
      size_t cut = section_end <= limit ? section_end
                                        : FindCut(pos, limit, std::max(prev_cut, pos), section_end);
      size_t end = cut;
      while (end > pos && IsSpace(text_[end - 1])) --end;
      if (end > pos) out_->push_back({text_.substr(pos, end - pos), path, pos, end});
      if (cut >= section_end) break;

      size_t next = SkipSpace(cut, section_end);
      if (overlap_ > 0 && next < section_end) {
        size_t j = std::max(end > overlap_ ? end - overlap_ : 0, pos + 1);
        while (j < end && !(IsSpace(text_[j - 1]) && !IsSpace(text_[j]))) ++j;
        // The window from j must reach past this cut, or the next chunk would repeat this one.
        if (j < end && j + target_ > cut) next = j;
      }
      prev_cut = cut;
      pos = next;
    }
  }

 private:
  size_t SkipSpace(size_t i, size_t end) const {
    while (i < end && IsSpace(text_[i])) ++i;
    return i;
  }

  // Where a chunk starting at `pos` ends: a position in (lower, limit], limit < section end.
  size_t FindCut(size_t pos, size_t limit, size_t lower, size_t section_end) const {
    // A block start, if the chunk stays at least half full.
    size_t para_floor = std::max(lower, pos + target_ / 2);
    const Span* after = std::upper_bound(first_ + 1, last_, limit,
                                         [](size_t v, const Span& s) { return v < s.begin; });
    if (after != first_ + 1) {
      size_t b = (after - 1)->begin;
      if (b > para_floor) return b;
    }
    // A sentence end or a line break (at least a quarter full), else the last whitespace.
    size_t sentence_floor = std::max(lower, pos + target_ / 4);
    size_t last_space = 0;
    for (size_t i = limit; i > lower; --i) {
      char c = text_[i];
      if (!IsSpace(c)) continue;
      if (i > sentence_floor) {
        char p = text_[i - 1];
        if (c == '\n' || p == '.' || p == '!' || p == '?') return i;
      } else if (last_space != 0) {
        return last_space;
      }
      if (last_space == 0) last_space = i;
    }
    if (last_space != 0) return last_space;
    // No whitespace at all: split between characters.
    size_t cut = limit;
    while (cut > lower && IsContinuationByte(text_[cut])) --cut;
    if (cut <= lower) {
      cut = limit;
      while (cut < section_end && IsContinuationByte(text_[cut])) ++cut;
    }
    return cut;
  }

  const std::string& text_;
  const size_t target_;
  const size_t overlap_;
  std::vector<TextChunk>* out_;
  const Span* first_ = nullptr;
  const Span* last_ = nullptr;
};

}  // namespace

Status ValidateChunkOptions(const ChunkOptions& options) {
  if (options.target_chars < kMinTargetChars || options.target_chars > kMaxTargetChars) {
    return Status::InvalidArgument(
        "chunk target_chars must be between " + std::to_string(kMinTargetChars) + " and " +
        std::to_string(kMaxTargetChars) + ", got " + std::to_string(options.target_chars));
  }
  if (options.overlap_chars >= options.target_chars) {
    return Status::InvalidArgument("chunk overlap_chars (" + std::to_string(options.overlap_chars) +
                                   ") must be less than target_chars (" +
                                   std::to_string(options.target_chars) + ")");
  }
  return Status::OK();
}

std::vector<TextChunk> ChunkDocument(const ParsedDocument& doc, const ChunkOptions& options) {
  // Options are meant to be validated first; out-of-range ones are clamped rather than trusted,
  // so a caller's mistake cannot loop forever. The overlap is also capped at 3/4 of the target:
  // beyond that, each chunk would advance by only a few words and the output would be many
  // times the input.
  size_t target = std::clamp(options.target_chars, kMinTargetChars, kMaxTargetChars);
  size_t overlap = std::min(options.overlap_chars, target - target / 4);

  std::vector<TextChunk> chunks;
  std::vector<Span> spans = NormalizeSpans(doc);
  chunks.reserve(doc.text.size() / (target - overlap) + spans.size() / 8 + 1);
  SectionChunker chunker(doc.text, target, overlap, &chunks);
  for (size_t i = 0; i < spans.size();) {
    size_t j = i + 1;
    while (j < spans.size() && !spans[j].heading &&
           (spans[j].path == spans[i].path || *spans[j].path == *spans[i].path)) {
      ++j;
    }
    chunker.Run(spans.data() + i, spans.data() + j, JoinPath(*spans[i].path));
    i = j;
  }
  return chunks;
}

}  // namespace kb

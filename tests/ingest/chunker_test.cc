// Chunker behaviour and invariants. The invariants (truthful offsets, full coverage, no empty
// or ill-formed chunks, no chunk across a heading) are checked on hand-written documents and as
// properties over many generated ones, since retrieval silently degrades if any of them breaks.
#include "ingest/chunker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "common/text_util.h"
#include "ingest/parser.h"
#include "test_util.h"

namespace kb {
namespace {

bool IsSpaceByte(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

ParsedDocument Parse(ContentType type, std::string_view bytes) {
  Result<ParsedDocument> doc = ParseDocument(type, bytes);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(doc).value() : ParsedDocument{};
}

// Every invariant ChunkDocument promises; returns the chunks for further checks.
std::vector<TextChunk> ChunkAndCheck(const ParsedDocument& doc, ChunkOptions options) {
  std::vector<TextChunk> chunks = ChunkDocument(doc, options);
  std::vector<bool> covered(doc.text.size(), false);
  size_t prev_start = 0;
  for (const TextChunk& c : chunks) {
    EXPECT_FALSE(c.text.empty());
    EXPECT_LT(c.start, c.end);
    EXPECT_LE(c.end, doc.text.size());
    if (c.end > doc.text.size() || c.start >= c.end) continue;
    EXPECT_EQ(c.text, doc.text.substr(c.start, c.end - c.start));
    EXPECT_FALSE(IsSpaceByte(c.text.front()));
    EXPECT_FALSE(IsSpaceByte(c.text.back()));
    EXPECT_TRUE(IsValidUtf8(c.text));
    // A character split may run up to 3 bytes past the target to finish a code point.
    EXPECT_LE(c.text.size(), std::max<size_t>(options.target_chars, 50) + 3);
    EXPECT_GE(c.start, prev_start);
    prev_start = c.start;
    for (size_t i = c.start; i < c.end; ++i) covered[i] = true;
  }
  for (size_t i = 0; i < doc.text.size(); ++i) {
    if (!IsSpaceByte(doc.text[i]) && !covered[i]) {
      ADD_FAILURE() << "byte " << i << " not covered";
      break;
    }
  }
  // No chunk crosses the start of a heading block: sections never mix.
  for (const TextBlock& b : doc.blocks) {
    if (!b.is_heading) continue;
    for (const TextChunk& c : chunks) {
      EXPECT_FALSE(c.start < b.offset && b.offset < c.end)
          << "chunk [" << c.start << "," << c.end << ") crosses heading at " << b.offset;
    }
  }
  return chunks;
}

TEST(ChunkerTest, ChunkOptionsOutOfRangeAreInvalid) {
  EXPECT_TRUE(ValidateChunkOptions({1000, 200}).ok());
  EXPECT_TRUE(ValidateChunkOptions({50, 0}).ok());
  EXPECT_TRUE(ValidateChunkOptions({100000, 99999}).ok());
  for (ChunkOptions bad : {ChunkOptions{49, 0}, ChunkOptions{100001, 0}, ChunkOptions{100, 100},
                           ChunkOptions{100, 500}}) {
    Status s = ValidateChunkOptions(bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad.target_chars << "/" << bad.overlap_chars;
  }
}

TEST(ChunkerTest, ChunkTextEqualsTheSliceItsOffsetsName) {
  ParsedDocument doc = Parse(ContentType::kMarkdown,
                             "# Title\n\n  Leading spaces paragraph.  \n\nAnother one here.\n");
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {1000, 200});
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].text, "# Title\n\n  Leading spaces paragraph.  \n\nAnother one here.");
  EXPECT_EQ(chunks[0].start, 0u);
  EXPECT_EQ(chunks[0].heading_path, "Title");
}

TEST(ChunkerTest, ChunksNeverMixTwoHeadingSections) {
  ParsedDocument doc =
      Parse(ContentType::kMarkdown, "intro\n\n# A\n\nalpha\n\n## B\n\nbeta\n\n# C\n\ngamma\n");
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {1000, 200});
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].text, "intro");
  EXPECT_EQ(chunks[0].heading_path, "");
  EXPECT_EQ(chunks[1].text, "# A\n\nalpha");
  EXPECT_EQ(chunks[1].heading_path, "A");
  EXPECT_EQ(chunks[2].text, "## B\n\nbeta");
  EXPECT_EQ(chunks[2].heading_path, "A > B");
  EXPECT_EQ(chunks[3].heading_path, "C");
}

TEST(ChunkerTest, RepeatedHeadingNameStillStartsANewSection) {
  ParsedDocument doc = Parse(ContentType::kMarkdown, "## Notes\n\none\n\n## Notes\n\ntwo\n");
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {1000, 200});
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].heading_path, "Notes");
  EXPECT_EQ(chunks[1].heading_path, "Notes");
}

TEST(ChunkerTest, ShortParagraphsArePackedUpToTheTarget) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Paragraph number " + std::to_string(i) + " is short.\n\n";
  ParsedDocument doc = Parse(ContentType::kText, text);
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {200, 0});
  EXPECT_GT(chunks.size(), 5u);
  EXPECT_LT(chunks.size(), 10u);
  for (const TextChunk& c : chunks) {
    // Whole paragraphs only: every chunk ends a paragraph.
    EXPECT_EQ(c.text.back(), '.') << c.text;
    EXPECT_EQ(c.text.rfind("Paragraph", 0), 0u) << c.text;
  }
}

TEST(ChunkerTest, LongParagraphSplitsAtSentenceEnds) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "This is sentence " + std::to_string(i) + " of a long one! ";
  ParsedDocument doc = Parse(ContentType::kText, text);
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {300, 0});
  ASSERT_GT(chunks.size(), 3u);
  for (const TextChunk& c : chunks) EXPECT_EQ(c.text.back(), '!') << c.text;
}

TEST(ChunkerTest, LongSentenceSplitsAtWhitespace) {
  std::string text;
  for (int i = 0; i < 500; ++i) text += "word" + std::to_string(i % 10) + " ";
  ParsedDocument doc = Parse(ContentType::kText, text);
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {100, 0});
  ASSERT_GT(chunks.size(), 20u);
  for (const TextChunk& c : chunks) {
    EXPECT_EQ(c.text.size() % 6, 5u) << "cut inside a word: " << c.text;
    if (&c != &chunks.back()) {
      EXPECT_GE(c.text.size(), 90u);
    }
  }
}

TEST(ChunkerTest, TextWithoutWhitespaceSplitsAtCharacterBoundaries) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += (i % 3 == 0) ? "é" : (i % 3 == 1 ? "世" : "🌍");
  ParsedDocument doc = Parse(ContentType::kText, text);
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {101, 30});
  ASSERT_GT(chunks.size(), 20u);
  size_t total = 0;
  for (const TextChunk& c : chunks) total += c.text.size();
  EXPECT_EQ(total, doc.text.size());  // no word boundaries, so no overlap
}

TEST(ChunkerTest, ConsecutiveChunksOverlapStartingAtAWordBoundary) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "token" + std::to_string(i) + " ";
  ParsedDocument doc = Parse(ContentType::kText, text);
  ChunkOptions options{500, 100};
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, options);
  ASSERT_GT(chunks.size(), 5u);
  for (size_t i = 1; i < chunks.size(); ++i) {
    const TextChunk& prev = chunks[i - 1];
    const TextChunk& cur = chunks[i];
    ASSERT_LT(cur.start, prev.end);
    size_t overlap = prev.end - cur.start;
    EXPECT_LE(overlap, options.overlap_chars);
    EXPECT_GE(overlap, options.overlap_chars - 20);
    EXPECT_TRUE(IsSpaceByte(doc.text[cur.start - 1])) << "overlap starts mid-word";
  }
}

TEST(ChunkerTest, OverlapDoesNotCrossIntoAnotherSection) {
  std::string md = "# One\n\n";
  for (int i = 0; i < 100; ++i) md += "alpha beta gamma. ";
  md += "\n\n# Two\n\nshort\n";
  ParsedDocument doc = Parse(ContentType::kMarkdown, md);
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {300, 100});
  ASSERT_GT(chunks.size(), 2u);
  EXPECT_EQ(chunks.back().text, "# Two\n\nshort");
  EXPECT_EQ(chunks.back().heading_path, "Two");
}

TEST(ChunkerTest, HandBuiltDocumentWithGapsAndOverlapsIsStillCovered) {
  ParsedDocument doc;
  doc.text = "uncovered head. block one. gap text! block two overlaps. tail";
  doc.blocks.push_back({{"H"}, 16, 10, true});
  doc.blocks.push_back({{"H"}, 37, 100, false});  // runs past the end
  doc.blocks.push_back({{"H"}, 20, 4, false});    // out of order, inside the first
  ChunkAndCheck(doc, {50, 10});
  doc.blocks.clear();
  std::vector<TextChunk> chunks = ChunkAndCheck(doc, {50, 10});
  EXPECT_FALSE(chunks.empty());
}

TEST(ChunkerTest, OutOfRangeOptionsAreClampedNotLoopedOn) {
  ParsedDocument doc = Parse(ContentType::kText, std::string(5000, 'x'));
  std::vector<TextChunk> chunks = ChunkDocument(doc, {0, 0});
  EXPECT_EQ(chunks.size(), 100u);
  chunks = ChunkDocument(doc, {100, 1000});
  EXPECT_FALSE(chunks.empty());
}

// Random documents: headings, paragraphs of sentences, very long words, multi-byte text,
// odd whitespace.
std::string RandomMarkdown(std::mt19937& rng) {
  static const char* kWords[] = {"a",  "the", "chunk", "état", "数据", "🌍🌍", "x.",
                                 "y!", "z?",  "end.",  "\t",   "  ",   "-"};
  std::uniform_int_distribution<int> pick(0, 99);
  std::string md;
  int blocks = 1 + pick(rng) % 30;
  for (int b = 0; b < blocks; ++b) {
    int kind = pick(rng);
    if (kind < 15) {
      md += std::string(1 + pick(rng) % 4, '#') + " Heading " + std::to_string(b) + "\n";
    } else if (kind < 20) {
      md += "```\n# code " + std::to_string(b) + "\n```\n";
    } else if (kind < 25) {
      std::string word;
      int n = pick(rng) * 10;
      for (int i = 0; i < n; ++i) word += (i % 5 == 0) ? "ü" : "w";
      md += word + "\n";
    } else {
      int words = pick(rng) * (pick(rng) < 10 ? 20 : 1);
      for (int i = 0; i < words; ++i) {
        md += kWords[pick(rng) % std::size(kWords)];
        md += pick(rng) < 10 ? "\n" : " ";
      }
    }
    md += pick(rng) < 70 ? "\n\n" : "\n";
  }
  return md;
}

TEST(ChunkerTest, ChunksCoverEveryNonSpaceByte) {
  const ChunkOptions kOptions[] = {{50, 0}, {50, 49}, {80, 20}, {200, 50}, {1000, 200}};
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    std::string md = RandomMarkdown(rng);
    Result<ParsedDocument> doc = ParseDocument(ContentType::kMarkdown, md);
    if (!doc.ok()) {
      EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
      continue;
    }
    for (ChunkOptions options : kOptions) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " target " +
                   std::to_string(options.target_chars));
      ChunkAndCheck(*doc, options);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

double SecondsToChunk(const ParsedDocument& doc, size_t* count) {
  auto start = std::chrono::steady_clock::now();
  *count = ChunkDocument(doc, {1000, 200}).size();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(ChunkerTest, FiveMegabyteParagraphWithoutSpacesIsChunkedQuickly) {
  auto start = std::chrono::steady_clock::now();
  ParsedDocument doc = Parse(ContentType::kText, std::string(5 << 20, 'q'));
  size_t count = 0;
  double chunk_seconds = SecondsToChunk(doc, &count);
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(count, 5000u);
  EXPECT_LT(total, 3.0 * kb::testing::kSanitizerTimeSlack)
      << "parse + chunk took " << total << " s";
  std::printf("5 MB without spaces: %zu chunks in %.1f ms\n", count, chunk_seconds * 1e3);
}

TEST(ChunkerTest, FiveMegabytesOfOneCharacterLinesAreChunkedQuickly) {
  std::string lines;
  lines.reserve(5 << 20);
  while (lines.size() < (5u << 20)) lines += "a\n";
  for (ContentType type : {ContentType::kText, ContentType::kMarkdown}) {
    auto start = std::chrono::steady_clock::now();
    ParsedDocument doc = Parse(type, lines);
    size_t count = 0;
    double chunk_seconds = SecondsToChunk(doc, &count);
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GT(count, 5000u);
    EXPECT_LT(total, 3.0 * kb::testing::kSanitizerTimeSlack)
        << "parse + chunk took " << total << " s";
    std::printf("5 MB of one-character lines: %zu chunks in %.1f ms\n", count, chunk_seconds * 1e3);
  }
  // Blank-line separated: one block per character.
  std::string paragraphs;
  while (paragraphs.size() < (5u << 20)) paragraphs += "a\n\n";
  auto start = std::chrono::steady_clock::now();
  ParsedDocument doc = Parse(ContentType::kMarkdown, paragraphs);
  size_t count = 0;
  SecondsToChunk(doc, &count);
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(total, 5.0 * kb::testing::kSanitizerTimeSlack)
      << "parse + chunk took " << total << " s";
}

TEST(ChunkerTest, OneMegabyteOfProseIsChunkedInMilliseconds) {
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < (1u << 20)) text += RandomMarkdown(rng);
  ParsedDocument doc = Parse(ContentType::kMarkdown, text);
  size_t count = 0;
  double best = 1e9;
  for (int i = 0; i < 3; ++i) best = std::min(best, SecondsToChunk(doc, &count));
  std::printf("1 MB of Markdown: %zu chunks in %.2f ms\n", count, best * 1e3);
  EXPECT_LT(best, 0.5);  // generous for sanitizer builds; release is a few ms
}

}  // namespace
}  // namespace kb

//! Tokenization through Hugging Face's `tokenizers` from a model's `tokenizer.json`: single
//! texts, pairs (truncated longest-first), pre-tokenized words with word ids (to align word
//! labels to sub-words), and character offsets as transformers' `return_offsets_mapping`.
//!
//! # Long texts
//!
//! Tokenizing costs memory in proportion to the text (tens of bytes per character: the
//! normalized string keeps an alignment per byte), while an input keeps at most `max_length`
//! tokens. So a text is cut to its first [`CHARS_PER_TOKEN`]` × max_length` characters before it
//! is tokenized: memory grows with the tokens kept, not with the length of a line. A text whose
//! first `max_length` tokens come from fewer characters than that (any text whose tokens
//! average fewer than 64 characters, spaces included, over its first `max_length` tokens)
//! encodes exactly as it would uncut, pairs included: a cut text still holds more tokens than
//! longest-first truncation keeps of it. Words of a pre-tokenized sentence are kept up to the
//! same number of characters (a longer word is cut); later words count as truncated. A QA
//! context is not cut: its windows cover all of it.

use std::path::{Path, PathBuf};

use pet_core::PetError;
use pet_core::limits::check_max_length_at_least_one;
use tokenizers::{
    EncodeInput, Encoding, InputSequence, PostProcessor, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::error::{NlpError, Result};

/// Characters of a text kept per token of `max_length` before tokenizing: see the module
/// documentation.
pub const CHARS_PER_TOKEN: usize = 64;

/// `text` cut to its first `max_chars` characters.
pub fn cut_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// One encoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Segment of each token (0 for the text, 1 for the pair).
    pub token_type_ids: Vec<u32>,
    /// Character span of each token in its own text (`(0, 0)` for special tokens).
    pub offsets: Vec<(usize, usize)>,
    /// Index of the word each token comes from, `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
}

impl From<Encoding> for Encoded {
    fn from(e: Encoding) -> Self {
        Self {
            input_ids: e.get_ids().to_vec(),
            token_type_ids: e.get_type_ids().to_vec(),
            offsets: e.get_offsets().to_vec(),
            word_ids: e.get_word_ids().to_vec(),
        }
    }
}

/// One window of a question and a context (extractive QA), as transformers'
/// `tokenizer(question, context, truncation="only_second", stride=..., return_overflowing_tokens=True)`
/// gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Ids, types and character offsets (into the question for sequence 0, the context for 1).
    pub encoded: Encoded,
    /// `Some(0)` for question tokens, `Some(1)` for context tokens, `None` for special tokens.
    pub sequence_ids: Vec<Option<usize>>,
}

/// A model's tokenizer, truncating to a maximum length.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    pad_id: u32,
    max_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json`; inputs are truncated to `max_length` tokens, special tokens
    /// included, the longer sequence of a pair first.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] naming the file when it cannot be read or parsed.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| NlpError::tokenizer(path, e))?;
        tokenizer.with_padding(None);
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .ok_or_else(|| NlpError::tokenizer(path, "has no `[PAD]` or `<pad>` token"))?;
        Self { tokenizer, path: path.to_path_buf(), pad_id, max_length }.with_max_length(max_length)
    }

    /// Special tokens the tokenizer adds to a text (`pair`: to a pair of texts).
    fn special_tokens(&self, pair: bool) -> usize {
        self.tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(pair))
    }

    /// Refuses a `max_length` below the special tokens of a text (of a pair, with `pair`),
    /// which the tokenizer would subtract from it with an overflow.
    fn check_room(&self, max_length: usize, pair: bool) -> Result<()> {
        check_max_length_at_least_one(max_length)?;
        let special = self.special_tokens(pair);
        if max_length < special {
            let what = if pair { "a text pair" } else { "a text" };
            let reason = format!(
                "{max_length} is less than the {special} special tokens the tokenizer adds to {what}"
            );
            return Err(PetError::config("max_length", reason).into());
        }
        Ok(())
    }

    /// Characters of a text kept before tokenizing: [`CHARS_PER_TOKEN`] per token.
    fn max_chars(&self) -> usize {
        self.max_length.saturating_mul(CHARS_PER_TOKEN)
    }

    /// The tokenizer truncating to `max_length` tokens instead.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for `max_length` 0 or below the special tokens of a text;
    /// [`NlpError::Tokenizer`] when the tokenizer refuses the length.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        self.check_room(max_length, false)?;
        self.max_length = max_length;
        self.tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| NlpError::tokenizer(&self.path, e))?;
        Ok(self)
    }

    /// The padding token's id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    fn run<'s>(&self, input: EncodeInput<'s>) -> Result<Encoded> {
        self.tokenizer
            .encode_char_offsets(input, true)
            .map(Encoded::from)
            .map_err(|e| NlpError::tokenizer(&self.path, e))
    }

    /// The tokens per input.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Encodes a text, or a text pair, each cut to [`CHARS_PER_TOKEN`]` × max_length`
    /// characters first.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when `max_length` is below the special tokens of a pair;
    /// [`NlpError::Tokenizer`] when the tokenizer fails.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let max_chars = self.max_chars();
        let first = InputSequence::from(cut_chars(text, max_chars));
        match pair {
            Some(pair) => {
                self.check_room(self.max_length, true)?;
                let second = InputSequence::from(cut_chars(pair, max_chars));
                self.run(EncodeInput::Dual(first, second))
            }
            None => self.run(EncodeInput::Single(first)),
        }
    }

    /// Splits `question` + `context` into windows of at most `max_length` tokens that truncate
    /// only the context and overlap by `stride` context tokens. The question is cut to
    /// [`CHARS_PER_TOKEN`]` × max_length` characters; the context is not cut.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when `max_length` is below the special tokens of a pair;
    /// [`NlpError::Tokenizer`] when the tokenizer fails, the question leaves no room for the
    /// context, or `stride` is not less than the context tokens of a window (the windows
    /// would not advance).
    pub fn encode_windows(
        &self,
        question: &str,
        context: &str,
        max_length: usize,
        stride: usize,
    ) -> Result<Vec<Window>> {
        self.check_room(max_length, true)?;
        let question = cut_chars(question, max_length.saturating_mul(CHARS_PER_TOKEN));
        let mut alone = self.tokenizer.clone();
        alone.with_truncation(None).map_err(|e| NlpError::tokenizer(&self.path, e))?;
        let question_tokens = alone
            .encode(question, false)
            .map_err(|e| NlpError::tokenizer(&self.path, e))?
            .get_ids()
            .len();
        let room = (max_length - self.special_tokens(true)).saturating_sub(question_tokens);
        if room == 0 {
            let reason = format!(
                "the question's {question_tokens} tokens leave no room for the context in \
                 max_length {max_length}"
            );
            return Err(NlpError::tokenizer(&self.path, reason));
        }
        let truncation = |stride| TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::OnlySecond,
            stride,
        };
        // The tokenizer asserts `stride < room` once the context overflows; a window that holds
        // the whole context never reads the stride, so such a context is encoded without one.
        let mut tokenizer = self.tokenizer.clone();
        let stride_fits = stride < room;
        tokenizer
            .with_truncation(Some(truncation(if stride_fits { stride } else { 0 })))
            .map_err(|e| NlpError::tokenizer(&self.path, e))?;
        let input = EncodeInput::Dual(InputSequence::from(question), InputSequence::from(context));
        let first = tokenizer
            .encode_char_offsets(input, true)
            .map_err(|e| NlpError::tokenizer(&self.path, e))?;
        if !stride_fits && !first.get_overflowing().is_empty() {
            let reason = format!(
                "doc_stride {stride} must be less than the {room} context tokens a window of \
                 max_length {max_length} holds beside this question's {question_tokens} tokens"
            );
            return Err(PetError::config("doc_stride", reason).into());
        }
        let mut encodings = vec![first.clone()];
        encodings.extend(first.get_overflowing().iter().cloned());
        Ok(encodings
            .into_iter()
            .map(|e| {
                let sequence_ids = e.get_sequence_ids();
                Window { encoded: Encoded::from(e), sequence_ids }
            })
            .collect())
    }

    /// Encodes pre-tokenized words; `word_ids` map every sub-word to its word. Words are kept
    /// up to [`CHARS_PER_TOKEN`]` × max_length` characters in all (a word past them is cut, the
    /// words after it are left out, as truncated words are).
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when the tokenizer fails.
    pub fn encode_words(&self, words: &[String]) -> Result<Encoded> {
        let mut left = self.max_chars();
        let mut kept: Vec<&str> = Vec::new();
        for word in words {
            if left == 0 {
                break;
            }
            let word = cut_chars(word, left);
            left -= word.chars().count();
            kept.push(word);
        }
        self.run(EncodeInput::Single(InputSequence::from(kept.as_slice())))
    }
}

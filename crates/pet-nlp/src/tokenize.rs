//! Tokenization through Hugging Face's `tokenizers` from a model's `tokenizer.json`: single
//! texts, pairs (truncated longest-first), pre-tokenized words with word ids (to align word
//! labels to sub-words), and character offsets as transformers' `return_offsets_mapping`.

use std::path::{Path, PathBuf};

use tokenizers::{
    EncodeInput, Encoding, InputSequence, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::error::{NlpError, Result};

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
        Self { tokenizer, path: path.to_path_buf(), pad_id }.with_max_length(max_length)
    }

    /// The tokenizer truncating to `max_length` tokens instead.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when the tokenizer refuses the length.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
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

    /// Encodes a text, or a text pair.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when the tokenizer fails.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let first = InputSequence::from(text);
        match pair {
            Some(pair) => self.run(EncodeInput::Dual(first, InputSequence::from(pair))),
            None => self.run(EncodeInput::Single(first)),
        }
    }

    /// Splits `question` + `context` into windows of at most `max_length` tokens that truncate
    /// only the context and overlap by `stride` context tokens.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when the tokenizer fails or the question leaves no room.
    pub fn encode_windows(
        &self,
        question: &str,
        context: &str,
        max_length: usize,
        stride: usize,
    ) -> Result<Vec<Window>> {
        let mut tokenizer = self.tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::OnlySecond,
                stride,
            }))
            .map_err(|e| NlpError::tokenizer(&self.path, e))?;
        let input = EncodeInput::Dual(InputSequence::from(question), InputSequence::from(context));
        let first = tokenizer
            .encode_char_offsets(input, true)
            .map_err(|e| NlpError::tokenizer(&self.path, e))?;
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

    /// Encodes pre-tokenized words; `word_ids` map every sub-word to its word.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when the tokenizer fails.
    pub fn encode_words(&self, words: &[String]) -> Result<Encoded> {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        self.run(EncodeInput::Single(InputSequence::from(words.as_slice())))
    }
}

//! What the papers report, printed beside our numbers. Every figure is the paper's own, on its
//! own data sets and models (GLUE, SuperGLUE, generation benchmarks; BERT, RoBERTa, GPT-2, T5),
//! not on SpamAssassin or WNUT-16 with MiniLM: they say what to expect, not what to match.
//! Only figures stated in a paper's abstract or a named table are quoted.

/// One method's figure from its paper.
#[derive(Debug)]
pub struct PaperFigure {
    /// `--method` preset it belongs to.
    pub method: &'static str,
    /// Paper and where in it.
    pub source: &'static str,
    /// Short citation for claim lines.
    pub cite: &'static str,
    /// What it reports.
    pub figure: &'static str,
}

/// The figures, in the study's method order.
pub const FIGURES: &[PaperFigure] = &[
    PaperFigure {
        method: "ptuning-v2",
        cite: "Liu et al. 2022",
        source: "Liu et al., 2022, P-Tuning v2 (ACL), abstract",
        figure: "deep prompt tuning matches the performance of fine-tuning with 0.1%-3% of the \
                 parameters tuned, across model scales and NLU tasks including sequence \
                 labeling",
    },
    PaperFigure {
        method: "prefix",
        cite: "Li and Liang 2021",
        source: "Li and Liang, 2021, Prefix-Tuning (ACL), abstract and method",
        figure: "with 0.1% of the parameters, comparable to fine-tuning on table-to-text in the \
                 full-data setting (GPT-2); the prefix is reparameterized by an MLP because \
                 training it directly was unstable; P-Tuning v2 (section 3.3) finds the MLP's \
                 benefit depends on the task and data set",
    },
    PaperFigure {
        method: "prompt",
        cite: "Lester et al. 2021",
        source: "Lester et al., 2021, The Power of Scale for Parameter-Efficient Prompt Tuning \
                 (EMNLP), abstract",
        figure: "input-only soft prompts close the gap to model tuning only as T5 grows past \
                 billions of parameters; P-Tuning v2 reports them behind fine-tuning on \
                 normal-sized models and hard sequence labeling",
    },
    PaperFigure {
        method: "lora",
        cite: "Hu et al. 2022",
        source: "Hu et al., 2022, LoRA (ICLR), Table 2",
        figure: "RoBERTa-base on GLUE (dev, average): LoRA with 0.3M trainable parameters 87.2 \
                 against full fine-tuning 86.4",
    },
    PaperFigure {
        method: "adapter",
        cite: "Houlsby et al. 2019",
        source: "Houlsby et al., 2019, Parameter-Efficient Transfer Learning for NLP (ICML), \
                 abstract",
        figure: "on GLUE, within 0.4% of full fine-tuning while adding 3.6% parameters per task \
                 (BERT-large)",
    },
    PaperFigure {
        method: "bitfit",
        cite: "Ben Zaken et al. 2022, via Hu et al. 2022",
        source: "Hu et al., 2022, LoRA (ICLR), Table 2 (Ben Zaken et al., 2022, BitFit, is the \
                 method)",
        figure: "RoBERTa-base on GLUE (dev, average): BitFit with 0.1M trainable parameters \
                 85.2 against full fine-tuning 86.4",
    },
];

/// The figure quoted for `method`, if any.
pub fn figure_for(method: &str) -> Option<&'static PaperFigure> {
    FIGURES.iter().find(|f| f.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quoted_method_is_in_the_study_and_quoted_once() {
        for figure in FIGURES {
            assert!(
                crate::study::METHODS.iter().any(|m| m.name == figure.method),
                "{figure:?} names no method of the study"
            );
            assert_eq!(FIGURES.iter().filter(|f| f.method == figure.method).count(), 1);
        }
        assert!(figure_for("full").is_none());
    }
}

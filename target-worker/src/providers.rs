//! The model providers users can configure. The model catalogue refers to these ids.

pub const PROVIDERS: &[&str] = &[
    "workers-ai",
    "mistral",
    "openai",
    "anthropic",
    "google-ai-studio",
    "groq",
    "deepseek",
    "cohere",
    "perplexity",
    "openrouter",
    "together-ai",
    "fireworks",
    "xai",
    "bedrock",
    "azure-openai",
    "huggingface",
    "cerebras",
    "replicate",
];

pub fn is_known(provider_id: &str) -> bool {
    PROVIDERS.contains(&provider_id)
}

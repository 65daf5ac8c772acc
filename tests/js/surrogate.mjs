// A string cut in the middle of an emoji, as a JS application cuts text to a length: it ends in
// a lone high surrogate, which JSON.stringify (and so the openai npm package) writes as \ud83d.
// Usage: OPENAI_BASE_URL=... OPENAI_API_KEY=... MARKER=... node surrogate.mjs
// Prints one JSON object; tests/gateway/test_surrogates.py checks it.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const text = `${process.env.MARKER} smile 😀`;
const cut = text.slice(0, text.length - 1); // drops the low surrogate only
const out = { lone: cut.charCodeAt(cut.length - 1).toString(16) };
const { data, response } = await client.chat.completions
  .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: cut }] })
  .withResponse();
out.content = data.choices[0].message.content;
out.promptTokens = data.usage.prompt_tokens;
out.gatewayPromptTokens = Number(response.headers.get("x-router-prompt-tokens"));
console.log(JSON.stringify(out));

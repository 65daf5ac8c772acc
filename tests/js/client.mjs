// Drives the gateway with the official `openai` npm package, as a JS application would.
// Usage: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... node client.mjs
// Prints one JSON object with what it saw; tests/gateway/test_node_client.py checks it.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 }); // reads OPENAI_BASE_URL and OPENAI_API_KEY
const out = {};

const resp = await client.chat.completions.create({
  model: "auto",
  messages: [{ role: "user", content: "Hello from Node" }],
});
out.content = resp.choices[0].message.content;
out.promptTokens = resp.usage.prompt_tokens;

const { data, response } = await client.chat.completions
  .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "headers" }] })
  .withResponse();
out.routedModel = response.headers.get("x-router-model");
out.requestId = response.headers.get("x-request-id");
out.hasChoices = data.choices.length === 1;

const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "[[fake:tokens=5]]" }],
});
let text = "";
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) out.streamUsage = chunk.usage.completion_tokens;
}
out.streamText = text;

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const emb = await client.embeddings.create({ model: "text-embedding-3-small", input: "hi" });
out.embeddingLength = emb.data[0].embedding.length;

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
} catch (err) {
  out.errorStatus = err.status;
  out.errorCode = err.code;
  out.errorType = err.type;
}
console.log(JSON.stringify(out));

// The Responses API through the gateway with the official `openai` npm package:
// plain, streamed, a tool call and its result, previous_response_id, and across API families.
// Usage: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... node responses.mjs
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const out = {};
const weather = {
  type: "function", name: "get_weather", description: "Weather for a city.",
  parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
};

for (const model of ["gpt-4o", "gpt-4o-mini"]) { // native, then translated to chat completions
  const r = {};
  const plain = await client.responses.create({ model, input: "Hello from Node [[fake:tokens=4]]", store: false });
  r.text = plain.output_text;
  r.outputTokens = plain.usage.output_tokens;

  const stream = await client.responses.create({ model, input: "[[fake:tokens=5]]", stream: true, store: false });
  r.types = [];
  r.streamText = "";
  for await (const event of stream) {
    r.types.push(event.type);
    if (event.type === "response.output_text.delta") r.streamText += event.delta;
  }

  const first = await client.responses.create({ model, input: "weather in Paris?", tools: [weather], store: false });
  const call = first.output[0];
  r.call = { type: call.type, name: call.name, args: JSON.parse(call.arguments) };
  const second = await client.responses.create({
    model, tools: [weather], store: false,
    input: [
      { role: "user", content: "weather in Paris?" },
      { type: "function_call", call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: "function_call_output", call_id: call.call_id, output: "18C" },
    ],
  });
  r.afterTool = second.output_text;
  out[model] = r;
}

const stored = await client.responses.create({ model: "gpt-4o", input: "remember" });
const { data: next, response } = await client.responses
  .create({ model: "auto", input: "continue", previous_response_id: stored.id })
  .withResponse();
out.continued = next.output_text;
out.continuedOn = response.headers.get("x-router-model");
try {
  await client.responses.create({ model: "auto", input: "x", previous_response_id: "resp_nope" });
} catch (err) {
  out.unknownStatus = err.status;
  out.unknownCode = err.code;
}
console.log(JSON.stringify(out));

// Loads the clawgate OpenClaw plugin the way OpenClaw does (its default export's
// register(api)), runs one before_tool_call for a read of README.md, and prints the hook's
// answer and what the plugin logged as one JSON line.
//
// node harness.mjs PLUGIN_INDEX_JS PLUGIN_CONFIG_JSON
import { pathToFileURL } from "node:url";

const [indexJs, configJson] = process.argv.slice(2);
const plugin = (await import(pathToFileURL(indexJs).href)).default;
const hooks = {};
const logged = [];
plugin.register({
  pluginConfig: JSON.parse(configJson),
  logger: { error: (m) => logged.push(m), warn: (m) => logged.push(m), info: () => {} },
  on: (name, handler) => {
    hooks[name] = handler;
  },
});
const answer = await hooks.before_tool_call(
  { toolName: "read", params: { path: "README.md" }, toolCallId: "call-1", runId: "run-1" },
  { agentId: "main", sessionKey: "agent:main:main" },
);
console.log(JSON.stringify({ answer: answer ?? null, logged }));

// Loads the browser's wasm module once for every importer in this page or worker. The page
// and the worker fetch the same URL, so the browser downloads it once.
import init, { WasmClient, WasmFence, WasmServer, constants } from '../pkg/web/fencelock_wasm.js';

await init({ module_or_path: new URL('../pkg/web/fencelock_wasm_bg.wasm', import.meta.url) });

export { WasmClient, WasmFence, WasmServer, constants };

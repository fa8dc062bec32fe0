'use strict';
// The round trips of roundtrip.test.js with the server on Node's `net` module instead of the
// addon's native socket loop (TLS connections always take that path).
process.env.FENCELOCK_TEST_IO = 'net';
require('./roundtrip.test.js');

#!/usr/bin/env node
'use strict';

require('../lib/cli')
  .main()
  .then((status) => {
    process.exitCode = status;
  })
  .catch((error) => {
    process.stderr.write(`fencelock: ${error.stack ?? error}\n`);
    process.exitCode = 1;
  });

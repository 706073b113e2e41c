'use strict';
// Copies the protocol's Node client into vendor/, where the extension loads it from. The
// extension ships it inside its package, so it has no runtime dependency; the copy is made, not
// kept in git, so it cannot drift from protocol/clients/node.
const fs = require('node:fs');
const path = require('node:path');

const source = path.resolve(__dirname, '..', '..', '..', 'protocol', 'clients', 'node', 'clauth-helper.js');
const target = path.resolve(__dirname, '..', 'vendor', 'clauth-helper.js');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(source, target);

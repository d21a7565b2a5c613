// Start kinesalite on loopback only (its CLI binds every interface).
// Usage: node kinesalite_server.js PORT
const kinesalite = require('kinesalite');
const port = Number(process.argv[2]);
kinesalite({createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100})
  .listen(port, '127.0.0.1', () => console.log(`kinesalite listening on 127.0.0.1:${port}`));

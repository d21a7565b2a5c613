// Start kinesalite on loopback only (its CLI binds every interface).
// Usage: node kinesalite_server.js PORT [DATA_DIR]
// With DATA_DIR the streams live in LevelDB files there and survive a restart (outage tests);
// without it they are in memory.
const kinesalite = require('kinesalite');
const port = Number(process.argv[2]);
const path = process.argv[3];
kinesalite({createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100, ...(path ? {path} : {})})
  .listen(port, '127.0.0.1', () => console.log(`kinesalite listening on 127.0.0.1:${port}`));

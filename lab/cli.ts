console.log("vmlab", process.argv.slice(2));

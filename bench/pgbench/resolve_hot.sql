SELECT resolve('c1');

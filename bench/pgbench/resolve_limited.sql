SELECT resolve('limited');

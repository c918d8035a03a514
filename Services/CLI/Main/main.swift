import BangfuCLI

await Bangfu.runMain()
